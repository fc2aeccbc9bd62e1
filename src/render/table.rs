//! The text table: aligned columns, optional group headings, the last column wrapped to a width.

use super::Grid;

/// Renders `grid` so that no line is wider than `width` where wrapping columns allow: a wrapping
/// column other than the last is as wide as its longest word, the last one takes what is left.
pub fn render(grid: &Grid, width: usize) -> String {
    let lead = grid.group_by.min(grid.columns.len().saturating_sub(1));
    let indent = if lead > 0 { 2 } else { 0 };
    let shown = &grid.columns[lead..];
    let last = shown.len() - 1;
    let mut widths: Vec<usize> = shown.iter().map(|c| c.title.chars().count()).collect();
    for row in &grid.rows {
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

    let mut out = String::new();
    let header: Vec<String> = shown.iter().map(|c| c.title.to_string()).collect();
    line(&mut out, 0, &widths_with_indent(&widths, indent), &header);
    let mut current: Option<&[String]> = None;
    for row in &grid.rows {
        if lead > 0 && current != Some(&row[..lead]) {
            out.push_str(&row[..lead].join(" · "));
            out.push('\n');
            current = Some(&row[..lead]);
        }
        let cells: Vec<Vec<String>> = row[lead..]
            .iter()
            .zip(shown)
            .zip(&widths)
            .map(|((cell, col), w)| {
                if col.wrap {
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
            s.push_str(&" ".repeat(w - cell.chars().count() + 2));
        }
    }
    out.push_str(s.trim_end());
    out.push('\n');
}

/// Greedy word wrap; a word longer than the width is cut.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        let mut word = word.to_string();
        while word.chars().count() > width {
            if !cur.is_empty() {
                lines.push(std::mem::take(&mut cur));
            }
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
        if need > width && !cur.is_empty() {
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
    }
}
