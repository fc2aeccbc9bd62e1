//! The text table: aligned columns, optional group headings, fitted to a width (wrapping
//! columns first, then the columns where it costs the fewest lines, their cells wrapped).

use super::Grid;
use crate::safe::{Sink, clean};

/// The narrowest a column is shortened to when the table does not fit (or its title, if longer).
const MIN_COLUMN: usize = 6;

/// Renders `grid` so that no line is wider than `width` where the columns allow: a wrapping column
/// other than the last is as wide as its longest word, the last one takes what is left; if the
/// table is still too wide, columns are narrowed one character at a time, each time the one
/// where that adds the fewest lines, down to [`MIN_COLUMN`] or the title, and their cells wrap.
/// Every cell and heading is cleaned for the terminal ([`Sink::Terminal`]).
pub fn render(grid: &Grid, width: usize) -> String {
    let rows: Vec<Vec<String>> = grid
        .rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| clean(Sink::Terminal, c).into_owned())
                .collect()
        })
        .collect();
    let lead = grid.group_by.min(grid.columns.len().saturating_sub(1));
    let indent = if lead > 0 { 2 } else { 0 };
    let shown = &grid.columns[lead..];
    let last = shown.len() - 1;
    let mut widths: Vec<usize> = shown.iter().map(|c| c.title.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row[lead..].iter().enumerate() {
            let need = if shown[i].wrap && i != last {
                cell.split_whitespace()
                    .map(|w| w.chars().count())
                    .max()
                    .unwrap_or(0)
            } else {
                cell.chars().count()
            };
            widths[i] = widths[i].max(need);
        }
    }
    if shown[last].wrap {
        let before: usize = indent + widths[..last].iter().map(|w| w + 2).sum::<usize>();
        widths[last] = width.saturating_sub(before).clamp(12, widths[last].max(12));
    }
    let total = |w: &[usize]| indent + w.iter().sum::<usize>() + 2 * (w.len() - 1);
    let floor: Vec<usize> = shown
        .iter()
        .zip(&widths)
        .map(|(c, w)| (*w).min(MIN_COLUMN.max(c.title.chars().count())))
        .collect();
    // How many cells of each length every column holds: what narrowing a column costs in lines.
    let mut lengths: Vec<std::collections::HashMap<usize, usize>> =
        vec![Default::default(); shown.len()];
    for row in &rows {
        for (i, cell) in row[lead..].iter().enumerate() {
            *lengths[i].entry(cell.chars().count()).or_default() += 1;
        }
    }
    let mut excess = total(&widths).saturating_sub(width);
    while excess > 0 {
        // The column where one character less adds the fewest lines (about: cells wrap at
        // word ends); among those the widest.
        let Some(i) = (0..widths.len())
            .filter(|&i| widths[i] > floor[i])
            .min_by_key(|&i| {
                let w = widths[i];
                let added: usize = lengths[i]
                    .iter()
                    .filter(|&(&len, _)| len >= w)
                    .map(|(&len, &n)| n * (len.div_ceil(w - 1) - len.div_ceil(w)))
                    .sum();
                (added, std::cmp::Reverse(w), std::cmp::Reverse(i))
            })
        else {
            break;
        };
        widths[i] -= 1;
        excess -= 1;
    }

    let mut out = String::new();
    let header: Vec<String> = shown.iter().map(|c| c.title.to_string()).collect();
    line(&mut out, 0, &widths_with_indent(&widths, indent), &header);
    let mut current: Option<&[String]> = None;
    for row in &rows {
        if lead > 0 && current != Some(&row[..lead]) {
            for l in wrap(&row[..lead].join(" · "), width) {
                out.push_str(&l);
                out.push('\n');
            }
            current = Some(&row[..lead]);
        }
        let cells: Vec<Vec<String>> = row[lead..]
            .iter()
            .zip(shown)
            .zip(&widths)
            .map(|((cell, col), w)| {
                if col.wrap || cell.chars().count() > *w {
                    wrap(cell, *w)
                } else {
                    vec![cell.clone()]
                }
            })
            .collect();
        let height = cells.iter().map(Vec::len).max().unwrap_or(1);
        for i in 0..height {
            let cols: Vec<String> = cells
                .iter()
                .map(|c| c.get(i).cloned().unwrap_or_default())
                .collect();
            line(&mut out, indent, &widths, &cols);
        }
    }
    out
}

/// The header stands at the left margin, over the indented rows: widen its first column instead.
fn widths_with_indent(widths: &[usize], indent: usize) -> Vec<usize> {
    let mut w = widths.to_vec();
    w[0] += indent;
    w
}

fn line(out: &mut String, indent: usize, widths: &[usize], cells: &[String]) {
    let mut s = " ".repeat(indent);
    for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
        if i + 1 == cells.len() {
            s.push_str(cell);
        } else {
            s.push_str(cell);
            s.push_str(&" ".repeat(w.saturating_sub(cell.chars().count()) + 2));
        }
    }
    out.push_str(s.trim_end());
    out.push('\n');
}

/// Greedy word wrap; a word longer than the width is cut.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    wrap_hanging(text, width, width)
}

/// [`wrap`] with a first line of its own width (a hanging indent: the first line indented less
/// than the rest).
pub fn wrap_hanging(text: &str, first: usize, rest: usize) -> Vec<String> {
    let width = |line: usize| if line == 0 { first } else { rest }.max(1);
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        let mut word = word.to_string();
        // The line the word starts on if the current one cannot take it.
        let next = |lines: &Vec<String>, cur: &String| lines.len() + usize::from(!cur.is_empty());
        while word.chars().count() > width(next(&lines, &cur)) {
            if !cur.is_empty() {
                lines.push(std::mem::take(&mut cur));
            }
            let width = width(lines.len());
            // Break a long name after a separator (`.`, `+`, `-`, `/`) where one fits, else cut.
            let chars: Vec<char> = word.chars().collect();
            let at = (1..width)
                .rev()
                .find(|&i| matches!(chars[i - 1], '.' | '+' | '-' | '/'))
                .unwrap_or(width);
            lines.push(chars[..at].iter().collect());
            word = chars[at..].iter().collect();
        }
        let need = if cur.is_empty() {
            0
        } else {
            cur.chars().count() + 1
        } + word.chars().count();
        if need > width(lines.len()) && !cur.is_empty() {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(&word);
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_words() {
        assert_eq!(wrap("a bb ccc dddd", 6), vec!["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("abcdefgh", 3), vec!["abc", "def", "gh"]);
        assert_eq!(
            wrap("media-routing-server.prompt-area", 24),
            vec!["media-routing-server.", "prompt-area"]
        );
        assert_eq!(wrap("", 3), vec![""]);
        // A hanging indent: the first line wider than the rest.
        assert_eq!(
            wrap_hanging("aa bb cc dd ee", 8, 5),
            vec!["aa bb cc", "dd ee"]
        );
        assert_eq!(
            wrap_hanging("aa bb cc dd ee", 5, 2),
            vec!["aa bb", "cc", "dd", "ee"]
        );
        assert_eq!(wrap_hanging("abcdefg", 4, 2), vec!["abcd", "ef", "g"]);
    }

    fn grid() -> Grid {
        use super::super::Column;
        let mut g = Grid::new(vec![
            Column::new("node"),
            Column::new("NAME"),
            Column::new("COMPONENT"),
            Column::new("ORIGIN"),
        ])
        .grouped(1);
        for i in 0..20 {
            g.push(vec![
                "node A".into(),
                format!("n{i}"),
                if i % 7 == 0 {
                    "presence-synchronization-interface".into()
                } else {
                    "agent-server".into()
                },
                if i == 3 {
                    "unit: max-simultaneous-recordings".into()
                } else {
                    "default".into()
                },
            ]);
        }
        g
    }

    #[test]
    fn a_table_fits_every_width_down_to_its_titles() {
        let g = grid();
        let natural = render(&g, 1000);
        let full = natural.lines().map(|l| l.chars().count()).max().unwrap();
        for width in [full, full - 1, 60, 50, 40, 30] {
            let text = render(&g, width);
            for line in text.lines() {
                assert!(line.chars().count() <= width, "{width}: {line:?}");
            }
            // Nothing is lost: every row's name is there.
            for i in 0..20 {
                assert!(text.contains(&format!("n{i} ")), "{width}: {text}");
            }
        }
        assert_eq!(
            render(&g, full),
            natural,
            "a table that fits is not changed"
        );
    }

    #[test]
    fn the_rare_long_cell_wraps_before_the_common_one() {
        let text = render(&grid(), 45);
        // `agent-server` (17 of 20 rows) stays whole; the one long origin wraps.
        assert_eq!(text.matches("agent-server").count(), 17, "{text}");
        assert!(
            !text.contains("unit: max-simultaneous-recordings"),
            "{text}"
        );
    }

    #[test]
    fn cells_are_cleaned_for_the_terminal() {
        let mut g = grid();
        g.rows[0][1] = "x\u{1b}]0;t\u{7}\u{202e}y".into();
        g.rows[0][0] = "node \u{1b}[2J".into();
        let text = render(&g, 100);
        assert!(
            !text
                .chars()
                .any(|c| c != '\n' && crate::safe::is_forbidden(c)),
            "{text:?}"
        );
        assert!(text.contains("x ]0;t  y"), "{text}");
    }
}
