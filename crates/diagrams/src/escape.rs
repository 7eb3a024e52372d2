//! Escaping for every output format. Names (cell scopes, genotype names) come from files the
//! tool reads, so each one is made inert for the format it is written into: it can never end
//! its string, open a tag, start a comment or a new statement.

/// The body of a DOT double-quoted string (the caller writes the quotes).
///
/// `\` and `"` are backslash-escaped (so a name cannot end the string, and `\N`, `\G`, `\l`
/// and the other escString escapes of Graphviz are shown literally), a newline becomes DOT's
/// `\n` line break, and other control characters become U+FFFD.
pub fn dot_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A Mermaid label body (the caller writes the double quotes around it).
///
/// Only ASCII letters, digits, space and `_ . , ( ) + = - /` stay as they are; every other
/// character (quotes, `#`, `;`, `%`, `<`, `>`, `&`, brackets, braces, backticks, newlines,
/// non-ASCII) becomes Mermaid's numeric entity code `#<decimal>;`, which Mermaid turns back
/// into the character when it draws the label. So a label cannot close its quotes, inject
/// HTML, start a `%%` comment line, an arrow `-->` or a markdown string.
pub fn mermaid_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || " _.,()+=-/".contains(c) {
            out.push(c);
        } else {
            out.push_str(&format!("#{};", u32::from(c)));
        }
    }
    out
}

/// XML character data or an attribute value (double-quoted) in the SVG.
///
/// `& < > " '` become entities; characters XML 1.0 forbids even as references (control
/// characters other than tab, newline and carriage return, U+FFFE, U+FFFF) become U+FFFD, and so
/// do tab, newline and carriage return (an SVG `<text>` shows them as nothing useful).
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\u{FFFE}' | '\u{FFFF}' => out.push('\u{FFFD}'),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// One line of plain text for a terminal: control characters (newlines, escape sequences)
/// and the bidirectional-override characters that can reorder what a reader sees are shown
/// as `\u{…}` escapes, so a name stays on its line and cannot rewrite the screen.
pub fn text_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || is_bidi_control(c) || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The Unicode bidirectional formatting characters (embeddings, overrides, isolates, marks).
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dot_escapes_quotes_backslashes_and_newlines() {
        assert_eq!(dot_string(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(dot_string("x\ny\u{1b}"), "x\\ny\u{FFFD}");
        assert_eq!(dot_string("cell_1 ü"), "cell_1 ü");
    }

    #[test]
    fn mermaid_keeps_plain_names_and_encodes_the_rest() {
        assert_eq!(mermaid_label("cell_1 (normal)"), "cell_1 (normal)");
        assert_eq!(mermaid_label("a\"b"), "a#34;b");
        assert_eq!(mermaid_label("-->"), "--#62;");
        assert_eq!(mermaid_label("%%x;"), "#37;#37;x#59;");
        assert_eq!(mermaid_label("é"), "#233;");
    }

    #[test]
    fn xml_escapes_markup_and_drops_forbidden_characters() {
        assert_eq!(
            xml("<a href='x'>&\"</a>"),
            "&lt;a href=&apos;x&apos;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(xml("a\u{0}b\u{FFFF}\n"), "a\u{FFFD}b\u{FFFD}\u{FFFD}");
    }

    #[test]
    fn text_escapes_controls_and_bidi_overrides() {
        assert_eq!(text_line("a\nb"), "a\\nb");
        assert_eq!(text_line("\u{1b}[2J"), "\\u{1b}[2J");
        assert_eq!(text_line("x\u{202E}y"), "x\\u{202e}y");
        assert_eq!(text_line("cell_7"), "cell_7");
    }

    /// Undoes `dot_string` the way a DOT lexer reads a quoted string.
    fn dot_unescape(s: &str) -> Option<String> {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return None,
                '\\' => match chars.next()? {
                    'n' => out.push('\n'),
                    other => out.push(other),
                },
                c => out.push(c),
            }
        }
        Some(out)
    }

    proptest! {
        #[test]
        fn dot_strings_never_end_early_and_round_trip(s in "\\PC*|[\"\\\\\n<>{};\\]]*") {
            let escaped = dot_string(&s);
            let back = dot_unescape(&escaped);
            prop_assert!(back.is_some(), "unescaped quote in {escaped:?}");
            prop_assert_eq!(back.unwrap_or_default(), s.replace(|c: char| c.is_control() && c != '\n', "\u{FFFD}"));
        }

        #[test]
        fn mermaid_labels_have_only_safe_characters(s in any::<String>()) {
            let escaped = mermaid_label(&s);
            prop_assert!(escaped.chars().all(|c| c.is_ascii_alphanumeric() || " _.,()+=-/#;".contains(c)));
            prop_assert!(!escaped.contains("-->") && !escaped.contains("%%"));
        }

        #[test]
        fn xml_text_has_no_markup_or_forbidden_characters(s in any::<String>()) {
            let escaped = xml(&s);
            prop_assert!(!escaped.contains(['<', '>', '"', '\'']));
            let allowed = |c: char| !c.is_control() && c != '\u{FFFE}' && c != '\u{FFFF}';
            prop_assert!(escaped.chars().all(allowed), "forbidden character in {:?}", escaped);
            // Every `&` starts one of the five entities.
            for (i, _) in escaped.match_indices('&') {
                let rest = &escaped[i..];
                prop_assert!(["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].iter().any(|e| rest.starts_with(e)));
            }
        }

        #[test]
        fn text_lines_stay_on_one_line(s in any::<String>()) {
            let escaped = text_line(&s);
            prop_assert!(escaped.chars().all(|c| !c.is_control() && !is_bidi_control(c)));
        }
    }
}
