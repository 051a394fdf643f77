//! The editor grammars under `editors/` against the language (grammar/flotilla.pest is
//! the source of truth).

use regex::Regex;
use serde_json::Value;

const VSCODE: &str = include_str!("../editors/vscode/syntaxes/flotilla.tmLanguage.json");

/// Every escape grammar/flotilla.pest accepts in a string, `\u{HEX}` with 1 to 6 digits.
const ESCAPES: [&str; 9] = [
    r#"\""#,
    r"\\",
    r"\n",
    r"\t",
    r"\r",
    r"\$",
    r"\u{a}",
    r"\u{1b}",
    r"\u{10FFFF}",
];

// The language gained `\u{HEX}`; the VS Code grammar highlighted only its `\u`.
#[test]
fn the_vscode_grammar_highlights_every_string_escape_whole() {
    let grammar: Value = serde_json::from_str(VSCODE).unwrap();
    let patterns = grammar["repository"]["strings"]["patterns"][0]["patterns"]
        .as_array()
        .unwrap();
    let escapes: Vec<Regex> = patterns
        .iter()
        .filter(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("constant.character.escape"))
        })
        .map(|p| Regex::new(&format!("^(?:{})", p["match"].as_str().unwrap())).unwrap())
        .collect();
    for escape in ESCAPES {
        // At the same position TextMate takes the first pattern that matches.
        let token = escapes.iter().find_map(|re| re.find(escape));
        assert_eq!(
            token.map(|m| m.as_str()),
            Some(escape),
            "`{escape}` is not highlighted as one escape"
        );
    }
}
