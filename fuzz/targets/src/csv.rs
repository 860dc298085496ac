//! CSV export escaping.

use wallet_core::csv::{Cell, neutralize, push_row, push_row_cells, read_strict};
use wallet_core::text::Description;

use crate::input::Input;

/// First characters a spreadsheet reads as the start of a formula.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

fn plain_number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = digits
        .split_once('.')
        .map_or((digits, None), |(i, f)| (i, Some(f)));
    let all = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all(int) && frac.is_none_or(all)
}

/// Writes rows of fuzzed cells (text, numbers, and text that passed description validation,
/// as a statement holds it) and reads them back with a strict RFC 4180 reader.
///
/// Checks: the output is well-formed, one row per call, with exactly the cells given; every
/// text cell reads back as itself, or with a leading `'` when it starts like a formula; a
/// number cell reads back verbatim only when it is a plain decimal; no cell read back starts
/// like a formula unless it is a plain negative number written as a number.
pub fn csv(data: &[u8]) {
    let mut input = Input::new(data);
    let mut rows: Vec<Vec<(bool, String)>> = Vec::new();
    while !input.is_empty() && rows.len() < 16 {
        let cells = usize::from(input.u8() % 9) + 1;
        let mut row = Vec::with_capacity(cells);
        for _ in 0..cells {
            let kind = input.u8() % 3;
            let text = input.text(64);
            match kind {
                0 => row.push((false, text)),
                1 => row.push((true, text)),
                _ => {
                    // What a stored description can hold.
                    if let Ok(d) = Description::new(&text) {
                        row.push((false, d.as_str().to_owned()));
                    } else {
                        row.push((false, text));
                    }
                }
            }
        }
        rows.push(row);
    }
    let mut out = String::new();
    for row in &rows {
        if row.iter().all(|(number, _)| !number) {
            let cells: Vec<&str> = row.iter().map(|(_, t)| t.as_str()).collect();
            push_row(&mut out, &cells);
        } else {
            let cells: Vec<Cell<'_>> = row
                .iter()
                .map(|(number, t)| {
                    if *number {
                        Cell::Number(t)
                    } else {
                        Cell::Text(t)
                    }
                })
                .collect();
            push_row_cells(&mut out, &cells);
        }
    }
    let read_back = match read_strict(&out) {
        Ok(rows) => rows,
        Err(why) => panic!("malformed CSV {out:?} from {rows:?}: {why}"),
    };
    assert_eq!(read_back.len(), rows.len(), "{out:?}");
    for (written, read) in rows.iter().zip(&read_back) {
        assert_eq!(written.len(), read.len(), "cells of {out:?}");
        for ((number, text), cell) in written.iter().zip(read) {
            let expected = if *number && plain_number(text) {
                text.clone()
            } else {
                neutralize(text).into_owned()
            };
            assert_eq!(cell, &expected, "{out:?}");
            if cell.starts_with(FORMULA_STARTS) {
                assert!(*number && plain_number(cell), "formula cell {cell:?}");
            }
            if !cell.starts_with('\'') || text.starts_with('\'') {
                assert_eq!(cell, text, "changed without a formula start");
            }
        }
    }
}
