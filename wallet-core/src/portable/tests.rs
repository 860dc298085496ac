use super::*;
use proptest::prelude::*;

fn table(name: &str) -> &'static Table {
    Table::named(name).unwrap()
}

fn counts(pairs: &[(&str, u64)]) -> Counts {
    let mut c = Counts::default();
    for (name, n) in pairs {
        c.set(name, *n).unwrap();
    }
    c
}

fn fingerprint() -> Value {
    Value::Blob((0u8..16).collect())
}

/// A small file touching every column type, text that needs escaping, and two-column keys.
fn sample_rows() -> Vec<(&'static str, Vec<Value>)> {
    use Value::{Int, Null, Text};
    vec![
        ("currencies", vec![Text("EUR".into()), Int(2)]),
        ("currencies", vec![Text("USD".into()), Int(2)]),
        (
            "wallets",
            vec![
                Int(1),
                Null,
                Int(101),
                Text("USD".into()),
                Int(1),
                Int(0),
                Int(5),
                Int(5),
            ],
        ),
        (
            "wallets",
            vec![
                Int(2),
                Int(7),
                Int(1),
                Text("USD".into()),
                Int(1),
                Int(0),
                Int(5),
                Int(5),
            ],
        ),
        (
            "transactions",
            vec![
                Int(1),
                Int(1),
                Int(1),
                Int(1250),
                Text("USD".into()),
                Text("Rent \"May\" — ünïcode\n\ttab \u{1}".into()),
                Null,
                Int(7),
                Text("key-1".into()),
                fingerprint(),
                Int(10),
                Int(10),
                Int(0),
                Null,
            ],
        ),
        (
            "entries",
            vec![Int(1), Int(1), Int(1), Int(-1250), Int(-1250), Int(1250)],
        ),
        (
            "entries",
            vec![Int(2), Int(1), Int(1), Int(1250), Int(1250), Int(0)],
        ),
        ("merchant_orders", vec![Int(1), Text("A-10".into()), Int(1)]),
        ("merchant_orders", vec![Int(1), Text("B".into()), Int(2)]),
        (
            "events",
            vec![
                Int(1),
                Int(i64::MIN),
                Text(String::new()),
                Text("s".into()),
                Text("{}".into()),
            ],
        ),
    ]
}

fn sample_counts() -> Counts {
    let mut c = Counts::default();
    for (name, _) in sample_rows() {
        c.set(name, c.get(name).unwrap() + 1).unwrap();
    }
    c
}

fn write(rows: &[(&str, Vec<Value>)], counts: &Counts) -> Result<(Vec<u8>, Summary)> {
    let mut out = Vec::new();
    let mut w = Writer::new(&mut out, counts)?;
    for (name, values) in rows {
        w.row(table(name), values)?;
    }
    let summary = w.finish()?;
    Ok((out, summary))
}

fn sample() -> Vec<u8> {
    write(&sample_rows(), &sample_counts()).unwrap().0
}

fn read_all(bytes: &[u8]) -> Result<(Vec<Row>, Summary)> {
    let mut rows = Vec::new();
    let summary = Reader::new(bytes)?.for_each_row(|row| {
        rows.push(row);
        Ok(())
    })?;
    Ok((rows, summary))
}

fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// The reason of an `import_invalid` error and its line.
#[track_caller]
fn refusal(bytes: &[u8]) -> (u64, String) {
    match read_all(bytes) {
        Err(Error::ImportInvalid { line, reason }) => (line, reason),
        other => panic!("expected import_invalid, got {other:?}"),
    }
}

#[test]
fn rows_round_trip_exactly() {
    let (bytes, written) = write(&sample_rows(), &sample_counts()).unwrap();
    let (rows, read) = read_all(&bytes).unwrap();
    assert_eq!(read, written);
    assert_eq!(read.rows, 10);
    assert_eq!(read.counts, sample_counts());
    let expected = sample_rows();
    assert_eq!(rows.len(), expected.len());
    for (i, (row, (name, values))) in rows.iter().zip(&expected).enumerate() {
        assert_eq!(row.table.name, *name);
        assert_eq!(&row.values, values);
        assert_eq!(row.line, i as u64 + 2);
    }
    // Writing what was read gives the same bytes.
    let again: Vec<(&str, Vec<Value>)> =
        rows.into_iter().map(|r| (r.table.name, r.values)).collect();
    assert_eq!(write(&again, &read.counts).unwrap().0, bytes);
}

/// The exact bytes of a small file: the format is an interface, so a change here is a new
/// format version.
#[test]
fn the_format_is_pinned() {
    let rows = vec![("currencies", vec![Value::Text("USD".into()), Value::Int(2)])];
    let (bytes, summary) = write(&rows, &counts(&[("currencies", 1)])).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let expected_header = concat!(
        r#"{"format":"wallet-ledger","version":1,"schema":3,"counts":{"currencies":1,"users":0,"#,
        r#""wallets":0,"transactions":0,"entries":0,"pending":0,"wallet_limits":0,"merchants":0,"#,
        r#""merchant_orders":0,"payment_links":0,"payment_methods":0,"notifications":0,"#,
        r#""events":0,"audit_log":0}}"#,
        "\n",
    );
    let body = format!("{expected_header}{{\"t\":\"currencies\",\"r\":[\"USD\",2]}}\n");
    let sha: [u8; 32] = {
        use sha2::Digest;
        sha2::Sha256::digest(body.as_bytes()).into()
    };
    assert_eq!(summary.sha256, sha);
    assert_eq!(
        text,
        format!(
            "{body}{{\"end\":\"wallet-ledger\",\"rows\":1,\"sha256\":\"{}\"}}\n",
            crate::auth::password::hex(&sha)
        )
    );
    // Blobs are lower-case hex; text is JSON-escaped; null is null.
    let line = lines(&sample())[5].clone();
    let line = String::from_utf8(line).unwrap();
    assert!(line.starts_with(r#"{"t":"transactions","r":[1,1,1,1250,"USD","Rent \"May\" — ünïcode\n\ttab \u0001",null,7,"key-1","000102030405060708090a0b0c0d0e0f",10,10,0,null]}"#), "{line}");
}

#[test]
fn an_empty_store_is_a_header_and_a_trailer() {
    let (bytes, summary) = write(&[], &Counts::default()).unwrap();
    assert_eq!(lines(&bytes).len(), 2);
    assert_eq!(summary.rows, 0);
    assert!(summary.counts.is_empty());
    assert_eq!(read_all(&bytes).unwrap().1, summary);
}

#[test]
fn damage_is_refused_with_its_line() {
    let good = sample();
    let ls = lines(&good);
    let last = ls.len() as u64; // the trailer's line number
    let join = |ls: &[Vec<u8>]| ls.concat();

    // Any changed byte fails the checksum.
    let text = String::from_utf8(good.clone()).unwrap();
    let flipped = text.replacen(",1250,", ",1251,", 1).into_bytes();
    assert_eq!(refusal(&flipped).0, last);
    assert!(refusal(&flipped).1.contains("checksum"));

    // Truncation, at a line boundary or inside a line, and a missing trailer.
    assert_eq!(
        refusal(&join(&ls[..4])),
        (5, "the file ends before its trailer: truncated".into())
    );
    assert_eq!(
        refusal(&good[..good.len() / 2]).1,
        "the file ends in the middle of a line: truncated"
    );
    assert_eq!(
        refusal(&good[..good.len() - 1]).1,
        "the file ends in the middle of a line: truncated"
    );
    assert_eq!(refusal(&join(&ls[..ls.len() - 1])).0, last);

    // Anything after the trailer, even an empty line.
    let mut extra = good.clone();
    extra.extend_from_slice(b"\n");
    assert_eq!(refusal(&extra), (last + 1, "data after the trailer".into()));
    let mut twice = good.clone();
    twice.extend_from_slice(ls.last().unwrap());
    assert_eq!(refusal(&twice).0, last + 1);

    // Empty input, a foreign header, a newer version or schema.
    assert_eq!(refusal(b"").0, 1);
    assert!(
        refusal(b"hello\n")
            .1
            .starts_with("not a ledger file header")
    );
    let header = String::from_utf8(ls[0].clone()).unwrap();
    for (from, to, reason) in [
        ("\"version\":1", "\"version\":2", "format version 2"),
        ("\"schema\":3", "\"schema\":4", "schema version 4"),
        ("wallet-ledger", "wallet-ledgen", "not a wallet-ledger file"),
        ("\"users\":0,", "", "the header must count every table"),
        (
            "\"users\":0,",
            "\"users\":0,\"users\":0,",
            "more counts than tables",
        ),
        ("\"pending\":0,", "\"users\":0,", "the header must count"),
        ("\"users\":0", "\"users\":-1", "not a ledger file header"),
        ("\"users\":0", "\"users\":1099511627777", "beyond the limit"),
        ("\"schema\":3", "\"schema\":3,\"extra\":1", "unknown field"),
    ] {
        let mut ls2 = ls.clone();
        ls2[0] = header.replacen(from, to, 1).into_bytes();
        let (line, got) = refusal(&reseal(&join(&ls2)));
        assert_eq!(line, 1, "{reason}");
        assert!(got.contains(reason), "{got} / {reason}");
    }
}

/// With the checksum recomputed, the structural checks behind it still refuse each defect.
#[test]
fn structural_defects_are_refused_behind_a_valid_checksum() {
    let ls = lines(&sample());
    let body = &ls[..ls.len() - 1];
    let resealed = |edit: &dyn Fn(&mut Vec<Vec<u8>>)| {
        let mut ls = body.to_vec();
        edit(&mut ls);
        reseal(&ls.concat())
    };
    type Edit = Box<dyn Fn(&mut Vec<Vec<u8>>)>;
    let mut cases: Vec<(Edit, u64, &str)> = vec![
        // Tables out of order: entries before transactions, a currency after entries.
        (
            Box::new(|ls| ls.swap(5, 6)),
            6,
            "transactions has 0 rows where the header announces 1",
        ),
        (
            Box::new(|ls| ls.insert(8, ls[1].clone())),
            9,
            "a row of currencies after rows of entries: tables out of order",
        ),
        // Rows out of key order, and a repeated key.
        (Box::new(|ls| ls.swap(1, 2)), 3, "out of key order"),
        (Box::new(|ls| ls[2] = ls[1].clone()), 3, "a key repeated"),
        (Box::new(|ls| ls[9] = ls[8].clone()), 10, "a key repeated"),
        // A dropped row: the header's count is not met.
        (Box::new(|ls| drop(ls.remove(3))), 5, "has 1 rows where"),
        (Box::new(|ls| drop(ls.remove(10))), 11, "has 0 rows where"),
        // An extra row beyond the count.
        (
            Box::new(|ls| ls.insert(3, b"{\"t\":\"currencies\",\"r\":[\"ZZZ\",2]}\n".to_vec())),
            4,
            "more rows of currencies",
        ),
        // A blob in upper case, a blob of an odd length.
        (
            Box::new(|ls| {
                let s = String::from_utf8(ls[5].clone()).unwrap();
                ls[5] = s.replace("0a0b", "0A0B").into_bytes();
            }),
            6,
            "transactions.fingerprint must be hexadecimal bytes",
        ),
        (
            Box::new(|ls| {
                let s = String::from_utf8(ls[5].clone()).unwrap();
                ls[5] = s.replace("0e0f", "0e0").into_bytes();
            }),
            6,
            "must be hexadecimal bytes",
        ),
    ];
    // Wrong arity, types, floats, huge integers, unknown tables, lines that are neither rows
    // nor a trailer, each in place of the first row.
    let first_rows = [
        (
            r#"{"t":"currencies","r":["EUR"]}"#,
            "with 1 values where the table has 2 columns",
        ),
        (
            r#"{"t":"currencies","r":["EUR","2"]}"#,
            "currencies.exponent must be an integer or null",
        ),
        (
            r#"{"t":"currencies","r":[5,2]}"#,
            "currencies.code must be text",
        ),
        (r#"{"t":"currencies","r":["EUR",2.0]}"#, "floating point"),
        (
            r#"{"t":"currencies","r":["EUR",9223372036854775808]}"#,
            "beyond 64 bits",
        ),
        (
            r#"{"t":"currencies","r":["EUR",true]}"#,
            "expected null, a 64-bit integer or a string",
        ),
        (r#"{"t":"money","r":["EUR",2]}"#, "unknown table \"money\""),
        (r#"{"t":"currencies"}"#, "neither a row nor the trailer"),
        (r#"{"t":"currencies","r":["EUR",2],"x":1}"#, "unknown field"),
        (
            r#"{"t":"currencies","t":"currencies","r":["EUR",2]}"#,
            "duplicate field",
        ),
        (
            r#"["currencies",["EUR",2],null,null,null]"#,
            "one JSON object",
        ),
        ("", "one JSON object"),
        ("{", "EOF"),
    ];
    for (line, reason) in first_rows {
        let line = format!("{line}\n").into_bytes();
        cases.push((Box::new(move |ls| ls[1] = line.clone()), 2, reason));
    }
    for (edit, line, reason) in cases {
        let (got_line, got) = refusal(&resealed(&*edit));
        assert!(got.contains(reason), "{got:?} should say {reason:?}");
        assert_eq!(got_line, line, "{reason}");
    }
    // A trailer whose row count is wrong, with the right checksum.
    let file = sample();
    let text = String::from_utf8(file).unwrap();
    let wrong = text.replace("\"rows\":10,", "\"rows\":11,");
    assert!(
        refusal(wrong.as_bytes())
            .1
            .contains("the trailer counts 11 rows")
    );
    let other = text.replace("{\"end\":\"wallet-ledger\"", "{\"end\":\"other\"");
    assert!(refusal(other.as_bytes()).1.contains("another format"));
}

#[test]
fn long_lines_are_refused_without_reading_them_whole() {
    let mut file = lines(&sample())[0].clone();
    file.extend(std::iter::repeat_n(b' ', LINE_BYTES_MAX + 10));
    assert_eq!(
        refusal(&file),
        (2, "a line longer than the format allows".into())
    );
    let long_header = vec![b'{'; LINE_BYTES_MAX * 2];
    assert_eq!(refusal(&long_header).0, 1);
}

#[test]
fn reasons_are_bounded() {
    let secret = "x".repeat(10_000);
    let file = format!("{{\"format\":\"{secret}é\"}}\n");
    let (_, reason) = refusal(file.as_bytes());
    assert!(
        reason.len() <= REASON_BYTES_MAX + '…'.len_utf8(),
        "{reason}"
    );
    let Error::ImportInvalid { reason, .. } = invalid(1, "é".repeat(300)) else {
        panic!()
    };
    assert!(reason.ends_with('…') && reason.len() <= REASON_BYTES_MAX + 3);
}

#[test]
fn the_writer_refuses_what_the_reader_would() {
    let c = counts(&[("currencies", 1), ("users", 0)]);
    let usd = vec![Value::Text("USD".into()), Value::Int(2)];
    let internal = |r: Result<()>| assert_eq!(r.unwrap_err().code(), "internal");
    let mut w = Writer::new(Vec::new(), &c).unwrap();
    internal(w.row(table("currencies"), &[Value::Int(1), Value::Int(2)]));
    internal(w.row(table("currencies"), &usd[..1]));
    w.row(table("currencies"), &usd).unwrap();
    internal(w.row(table("currencies"), &usd));
    // A table out of order, a table not in the format.
    let mut w = Writer::new(Vec::new(), &counts(&[("currencies", 1), ("wallets", 1)])).unwrap();
    w.row(
        table("wallets"),
        &[
            Value::Int(1),
            Value::Null,
            Value::Int(101),
            Value::Text("USD".into()),
            Value::Int(1),
            Value::Int(0),
            Value::Int(1),
            Value::Int(1),
        ],
    )
    .unwrap_err();
    let fake = Table {
        name: "fake",
        columns: &[],
        key_len: 0,
    };
    internal(w.row(&fake, &[]));
    // Fewer rows than counted.
    let w = Writer::new(Vec::new(), &c).unwrap();
    assert_eq!(w.finish().unwrap_err().code(), "internal");
    // Counts beyond the limit, unknown tables, lines beyond the limit.
    let mut huge = Counts::default();
    huge.set("users", ROWS_PER_TABLE_MAX + 1).unwrap();
    assert_eq!(
        Writer::new(Vec::new(), &huge).unwrap_err().code(),
        "internal"
    );
    assert_eq!(huge.set("nope", 1).unwrap_err().code(), "internal");
    let mut w = Writer::new(Vec::new(), &c).unwrap();
    internal(w.row(
        table("currencies"),
        &[Value::Text("x".repeat(LINE_BYTES_MAX)), Value::Int(2)],
    ));
}

#[test]
fn write_failures_are_storage_errors() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let w = Writer::new(Broken, &Counts::default()).unwrap();
    let e = w.finish().unwrap_err();
    assert_eq!(e.code(), "storage_error");
    assert!(e.to_string().contains("disk on fire"));

    struct Failing;
    impl std::io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("cable cut"))
        }
    }
    assert_eq!(Reader::new(Failing).unwrap_err().code(), "storage_error");
}

#[test]
fn reading_past_the_end_is_a_bug_not_a_panic() {
    let file = sample();
    let mut r = Reader::new(file.as_slice()).unwrap();
    while let Item::Row(_) = r.next_item().unwrap() {}
    assert_eq!(r.line(), lines(&file).len() as u64);
    assert_eq!(r.next_item().unwrap_err().code(), "internal");
}

#[test]
fn counts_and_values() {
    let c = sample_counts();
    assert_eq!(c.get("currencies"), Some(2));
    assert_eq!(c.get("nope"), None);
    assert_eq!(c.total(), 10);
    assert!(!c.is_empty() && Counts::default().is_empty());
    assert_eq!(c.iter().count(), TABLE_COUNT);
    let collected = Counts::collect(|t| Ok(c.get(t.name).unwrap())).unwrap();
    assert_eq!(collected, c);
    assert!(Value::Null.fits(ColumnType::Blob));
    assert!(!Value::Int(1).fits(ColumnType::Text));
    assert!(Value::Int(-1) < Value::Int(1) && Value::Text("B".into()) < Value::Text("a".into()));
    assert_eq!(unhex("00ff10"), Some(vec![0, 255, 16]));
    assert_eq!(unhex(""), Some(vec![]));
    for bad in ["0", "0g", "FF", " 0", "é0"] {
        assert_eq!(unhex(bad), None, "{bad}");
    }
}

/// Feeds `bytes` to a reader to the end; whatever happens, it must not panic.
fn read_anything(bytes: &[u8]) {
    if let Ok(r) = Reader::new(bytes) {
        let _ = r.for_each_row(|_| Ok(()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        read_anything(&bytes);
    }

    #[test]
    fn arbitrary_lines_after_a_valid_header_never_panic(
        body in proptest::collection::vec("[ -~]{0,80}\n", 0..20)
    ) {
        let mut file = lines(&sample())[0].clone();
        file.extend(body.concat().into_bytes());
        read_anything(&file);
        read_anything(&reseal(&file));
    }

    #[test]
    fn damaged_files_never_panic_and_never_pass(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let good = sample();
        let mut bad = good.clone();
        for (at, byte) in &edits {
            let i = at.index(bad.len());
            bad[i] = *byte;
        }
        if truncate {
            bad.truncate(cut.index(bad.len()));
        }
        read_anything(&bad);
        read_anything(&reseal(&bad));
        if bad != good {
            prop_assert!(read_all(&bad).is_err());
        }
    }
}
