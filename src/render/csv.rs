//! CSV: a header row and one record per grid row, quoted as RFC 4180 wants, every cell made
//! safe for a spreadsheet ([`Sink::CsvCell`]: no formula, no control character).

use super::Grid;
use crate::safe::{Sink, clean};

pub fn render(grid: &Grid) -> String {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let header: Vec<&str> = grid.columns.iter().map(|c| c.title).collect();
    // Writing to a Vec<u8> cannot fail.
    w.write_record(
        header
            .iter()
            .map(|h| h.to_ascii_lowercase().replace(' ', "_")),
    )
    .expect("in memory");
    for row in &grid.rows {
        w.write_record(row.iter().map(|c| clean(Sink::CsvCell, c).into_owned()))
            .expect("in memory");
    }
    String::from_utf8(w.into_inner().expect("in memory")).expect("cells are UTF-8")
}
