//! Writing CSV (RFC 4180) that is safe to open in a spreadsheet.
//!
//! Fields are separated by `,` and rows end with CRLF. A field is enclosed in double quotes
//! (with inner quotes doubled) when it contains `,`, `"`, CR or LF, or starts or ends with a
//! space, so every field reads back exactly.
//!
//! Text fields are also neutralized against formula injection: a spreadsheet evaluates a cell
//! that starts with `=`, `+`, `-`, `@`, TAB or CR as a formula, so such text gets a leading
//! `'` (see [`neutralize`]). Numbers the library formats itself, such as `-12.50`, are written
//! as [`Cell::Number`] and left as they are.

use std::borrow::Cow;

/// First characters that make a spreadsheet read a cell as a formula.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// One field of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cell<'a> {
    /// Free text (names, descriptions, references): neutralized, then quoted if needed.
    Text(&'a str),
    /// A number the caller formatted itself, written verbatim.
    ///
    /// Only a plain decimal (an optional `-`, digits, optionally `.` and more digits) counts:
    /// anything else is written as [`Cell::Text`], so a mistake can neither inject a formula
    /// nor break the row.
    Number(&'a str),
}

/// `cell` made safe to open in a spreadsheet: when it starts with `=`, `+`, `-`, `@`, TAB or
/// CR, a `'` is put in front of it (spreadsheets show the rest as text); anything else is
/// returned unchanged.
pub fn neutralize(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some(first) if FORMULA_STARTS.contains(&first) => {
            let mut safe = String::with_capacity(cell.len().saturating_add(1));
            safe.push('\'');
            safe.push_str(cell);
            Cow::Owned(safe)
        }
        _ => Cow::Borrowed(cell),
    }
}

/// Appends one row of text cells to `out`: each neutralized, quoted when needed, separated by
/// `,` and ended with CRLF.
///
/// A row of a single empty cell is written `""` so that it is not a blank line; a row of no
/// cells is a bare CRLF.
pub fn push_row(out: &mut String, cells: &[&str]) {
    push_fields(out, cells.iter().map(|cell| Cell::Text(cell)));
}

/// Appends one row of cells to `out`, like [`push_row`], but with [`Cell::Number`] cells
/// written verbatim.
pub fn push_row_cells(out: &mut String, cells: &[Cell<'_>]) {
    push_fields(out, cells.iter().copied());
}

fn push_fields<'a>(out: &mut String, cells: impl ExactSizeIterator<Item = Cell<'a>>) {
    let single = cells.len() == 1;
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        match cell {
            Cell::Number(text) if is_plain_number(text) => out.push_str(text),
            Cell::Text(text) | Cell::Number(text) => {
                let safe = neutralize(text);
                if safe.is_empty() && single {
                    out.push_str("\"\"");
                } else {
                    push_field(out, &safe);
                }
            }
        }
    }
    out.push_str("\r\n");
}

/// Writes `field` as it is, or quoted when it would not read back exactly otherwise.
fn push_field(out: &mut String, field: &str) {
    let needs_quotes =
        field.contains([',', '"', '\r', '\n']) || field.starts_with(' ') || field.ends_with(' ');
    if !needs_quotes {
        out.push_str(field);
        return;
    }
    out.push('"');
    for c in field.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

/// Whether `text` is `-?[0-9]+(\.[0-9]+)?`.
fn is_plain_number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && fraction.is_none_or(all_digits)
}

/// A strict RFC 4180 reader, the oracle of the tests and the fuzz target that check what
/// [`push_row`] writes: every row ends with CRLF, quoted fields may hold anything, and anything
/// else (a bare quote, text after a closing quote, a lone CR or LF) is an error saying what.
#[cfg(any(test, feature = "testkit"))]
pub fn read_strict(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted_field = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if field.is_empty() && !quoted_field => {
                quoted_field = true;
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(other) => field.push(other),
                        None => return Err("unterminated quote".into()),
                    }
                }
                match chars.peek() {
                    Some(',') | Some('\r') | None => {}
                    other => return Err(format!("{other:?} after a closing quote")),
                }
            }
            '"' => return Err("quote inside an unquoted field".into()),
            ',' => {
                fields.push(std::mem::take(&mut field));
                quoted_field = false;
            }
            '\r' => {
                if chars.next() != Some('\n') {
                    return Err("CR without LF".into());
                }
                fields.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut fields));
                quoted_field = false;
            }
            '\n' => return Err("LF without CR".into()),
            other if quoted_field => return Err(format!("{other:?} after a closing quote")),
            other => field.push(other),
        }
    }
    if !field.is_empty() || !fields.is_empty() || quoted_field {
        return Err("last row not ended by CRLF".into());
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row(cells: &[&str]) -> String {
        let mut out = String::new();
        push_row(&mut out, cells);
        out
    }

    fn row_cells(cells: &[Cell<'_>]) -> String {
        let mut out = String::new();
        push_row_cells(&mut out, cells);
        out
    }

    #[test]
    fn plain_fields() {
        assert_eq!(row(&["a", "b c", "1"]), "a,b c,1\r\n");
        assert_eq!(row(&["", "", ""]), ",,\r\n");
        assert_eq!(row(&["x", ""]), "x,\r\n");
        assert_eq!(row(&[""]), "\"\"\r\n");
        assert_eq!(row(&[]), "\r\n");
        assert_eq!(row(&["Zoë", "東京", "🙂"]), "Zoë,東京,🙂\r\n");
    }

    #[test]
    fn quoting() {
        assert_eq!(row(&["a,b"]), "\"a,b\"\r\n");
        assert_eq!(row(&["say \"hi\""]), "\"say \"\"hi\"\"\"\r\n");
        assert_eq!(row(&["\""]), "\"\"\"\"\r\n");
        assert_eq!(row(&["line\r\nbreak"]), "\"line\r\nbreak\"\r\n");
        assert_eq!(row(&["lf\nonly"]), "\"lf\nonly\"\r\n");
        assert_eq!(row(&[" lead"]), "\" lead\"\r\n");
        assert_eq!(row(&["trail "]), "\"trail \"\r\n");
        assert_eq!(row(&["in side"]), "in side\r\n");
        assert_eq!(row(&["a", "b,c", "d"]), "a,\"b,c\",d\r\n");
    }

    #[test]
    fn formula_prefixes_are_neutralized() {
        for (cell, safe) in [
            ("=SUM(A1:A9)", "'=SUM(A1:A9)"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@cmd", "'@cmd"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("=", "'="),
        ] {
            assert_eq!(neutralize(cell), safe, "{cell:?}");
        }
        for harmless in ["", "a=b", " =1", "'=x", "12", "Zoë"] {
            assert!(
                matches!(neutralize(harmless), Cow::Borrowed(_)),
                "{harmless:?}"
            );
        }
        // Neutralized, then quoted when the result needs it.
        assert_eq!(row(&["=1+2"]), "'=1+2\r\n");
        assert_eq!(
            row(&["=HYPERLINK(\"x\",\"y\")"]),
            "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\"\r\n"
        );
        assert_eq!(row(&["\rx"]), "\"'\rx\"\r\n");
        assert_eq!(row(&["-1 "]), "\"'-1 \"\r\n");
        assert_eq!(row(&["\tx"]), "'\tx\r\n");
        // Text that looks like a negative number is still text.
        assert_eq!(row(&["-12.50"]), "'-12.50\r\n");
    }

    #[test]
    fn numbers_are_written_verbatim() {
        assert_eq!(
            row_cells(&[
                Cell::Text("Coffee"),
                Cell::Number("-12.50"),
                Cell::Number("0"),
                Cell::Number("1234567.891"),
                Cell::Text("-12.50"),
            ]),
            "Coffee,-12.50,0,1234567.891,'-12.50\r\n"
        );
        // Anything that is not a plain decimal is treated as text.
        for (not_a_number, written) in [
            ("-1+2", "'-1+2"),
            ("=1", "'=1"),
            ("1,5", "\"1,5\""),
            ("1e5", "1e5"),
            ("", "\"\""),
            ("-", "'-"),
            ("1.", "1."),
            (".5", ".5"),
            ("--1", "'--1"),
            ("１２", "１２"),
        ] {
            assert_eq!(
                row_cells(&[Cell::Number(not_a_number)]),
                format!("{written}\r\n"),
                "{not_a_number:?}"
            );
        }
        assert_eq!(row_cells(&[Cell::Number(""), Cell::Number("")]), ",\r\n");
    }

    #[test]
    fn the_reader_reads_what_it_should() {
        assert_eq!(
            read_strict("a,\"b,\"\"c\"\"\"\r\n,\r\n").unwrap(),
            vec![vec!["a", "b,\"c\""], vec!["", ""]]
        );
        for bad in ["a", "a\n", "a\"b\r\n", "\"a\"b\r\n", "\"a\r\n", "a\rb\r\n"] {
            assert!(read_strict(bad).is_err(), "{bad:?}");
        }
    }

    fn cell_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-c ,\"\r\n\t=+@'é😀-]{0,10}",
            "\\PC{0,10}",
            any::<String>(),
            "-?[0-9]{1,4}(\\.[0-9]{1,3})?",
        ]
    }

    proptest! {
        #[test]
        fn text_rows_read_back_neutralized(
            rows in proptest::collection::vec(proptest::collection::vec(cell_text(), 1..6), 1..5),
        ) {
            let mut out = String::new();
            for cells in &rows {
                let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
                push_row(&mut out, &cells);
            }
            let expected: Vec<Vec<String>> = rows
                .iter()
                .map(|cells| cells.iter().map(|c| neutralize(c).into_owned()).collect())
                .collect();
            prop_assert_eq!(read_strict(&out).unwrap(), expected);
        }

        #[test]
        fn mixed_rows_read_back(
            cells in proptest::collection::vec((cell_text(), any::<bool>()), 1..8),
        ) {
            let row: Vec<Cell<'_>> = cells
                .iter()
                .map(|(text, number)| if *number { Cell::Number(text) } else { Cell::Text(text) })
                .collect();
            let expected: Vec<String> = cells
                .iter()
                .map(|(text, number)| {
                    if *number && is_plain_number(text) {
                        text.clone()
                    } else {
                        neutralize(text).into_owned()
                    }
                })
                .collect();
            let parsed = read_strict(&row_cells(&row)).unwrap();
            prop_assert_eq!(parsed, vec![expected.clone()]);
            // Nothing read back starts like a formula, except a plain negative number.
            for cell in &expected {
                if let Some(first) = cell.chars().next() {
                    prop_assert!(
                        !FORMULA_STARTS.contains(&first) || (first == '-' && is_plain_number(cell)),
                        "{:?}", cell
                    );
                }
            }
        }
    }
}
