//! Renderers: turn core data into text (table, csv, markdown); JSON is serde on the data itself.

pub mod catalog;
pub mod csv;
pub mod flows;
pub mod markdown;
pub mod plan;
pub mod sarif;
pub mod table;

/// The output formats of the listing commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a person (grouped, wrapped to the terminal)
    Table,
    /// Machine-readable, one JSON document
    Json,
    /// Comma-separated values with a header row (spreadsheets, the firewall team)
    Csv,
    /// A GitHub-flavoured Markdown table (wikis, tickets)
    Markdown,
}

/// A column of a [`Grid`].
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub title: &'static str,
    /// Long values wrap onto more lines in the text table (only the last column may wrap).
    pub wrap: bool,
}

impl Column {
    pub const fn new(title: &'static str) -> Column {
        Column { title, wrap: false }
    }

    pub const fn wrapping(title: &'static str) -> Column {
        Column { title, wrap: true }
    }
}

/// Rows of text cells under named columns: what every tabular renderer takes.
#[derive(Debug, Clone)]
pub struct Grid {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<String>>,
    /// The text table groups rows by this many leading columns: a heading line per group.
    pub group_by: usize,
}

impl Grid {
    pub fn new(columns: Vec<Column>) -> Grid {
        Grid {
            columns,
            rows: Vec::new(),
            group_by: 0,
        }
    }

    pub fn grouped(mut self, leading: usize) -> Grid {
        self.group_by = leading;
        self
    }

    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// The grid in a text format; `Json` is not a grid format.
    pub fn render(&self, format: Format, width: usize) -> String {
        match format {
            Format::Table => table::render(self, width),
            Format::Csv => csv::render(self),
            Format::Markdown => markdown::render(self),
            Format::Json => unreachable!("JSON is rendered from the data, not from a grid"),
        }
    }
}
