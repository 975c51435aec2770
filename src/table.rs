//! Plain-text tables for people: columns padded to their widest cell, the
//! last column left free (it holds reasons, which can be long).

pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    // Cells hold outside data (names from backup headers, object keys,
    // server messages): no control character reaches the terminal.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| crate::redact::terminal(c).into_owned())
                .collect()
        })
        .collect();
    let rows = &rows;
    let padded = header.len().saturating_sub(1);
    let widths: Vec<usize> = (0..padded)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .chain([header[c].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        let mut out = String::new();
        for (c, cell) in cells.iter().enumerate() {
            match widths.get(c) {
                Some(w) => out.push_str(&format!("{cell:<w$}  ")),
                None => out.push_str(cell),
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = vec![line(header)];
    out.extend(
        rows.iter()
            .map(|r| line(&r.iter().map(String::as_str).collect::<Vec<_>>())),
    );
    out.join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn pads_all_but_the_last_column() {
        let t = super::render(
            &["A", "LONG", "REASON"],
            &[vec!["xyz".into(), "1".into(), "free text".into()]],
        );
        assert_eq!(t, "A    LONG  REASON\nxyz  1     free text");
    }
}
