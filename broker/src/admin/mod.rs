//! Shared pieces of the admin commands (`phxq group`, `phxq topic`, `phxq config`, ...),
//! which talk the Kafka protocol to any broker through [`crate::kafka_client`]: string
//! conversion, error checks, tables, broker addresses; ListOffsets by partition leader in
//! [`offsets`].

pub mod offsets;

use kafka_protocol::protocol::StrBytes;

/// Kafka's "no error".
const NONE: i16 = 0;

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn check(code: i16, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(code == NONE, "{what} failed with Kafka error code {code}");
    Ok(())
}

/// Prints rows as left-aligned columns.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `host:port` of a broker as Metadata gives it.
pub fn address(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
