//! Syntax errors in words: what pest expected where a declaration stopped parsing,
//! with what was found there and a hint.

use std::sync::{Mutex, PoisonError};

use pest::Parser as _;

use super::{Grammar, Rule};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::source::FileId;
use crate::span::Span;

/// The syntax error in `text[base..]`, which does not parse: the whole text is parsed
/// again with pest's attempt tracking (slower, so only on failure) to learn which
/// punctuation was expected, not only which rules.
pub(in crate::syntax) fn syntax_error_in(
    file: FileId,
    full_text: &str,
    text: &str,
    base: usize,
) -> Diagnostic {
    // The switch is global to pest, so one thread at a time turns it on and off, and
    // every detailed parse sees it on.
    static DETAIL: Mutex<()> = Mutex::new(());
    let _detail = DETAIL.lock().unwrap_or_else(PoisonError::into_inner);
    pest::set_error_detail(true);
    let detailed = Grammar::parse(Rule::file, &text[base..]).err();
    pest::set_error_detail(false);
    match detailed {
        Some(e) => syntax_error(file, full_text, base, e),
        None => Diagnostic::error(Code::E0001, "syntax error"),
    }
}

/// Turn pest's error into a diagnostic that says what was expected in words.
fn syntax_error(
    file: FileId,
    text: &str,
    base: usize,
    error: pest::error::Error<Rule>,
) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let rule_position = match error.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let attempts = error.parse_attempts();
    let tokens: Vec<String> = attempts
        .as_ref()
        .map(|a| {
            a.expected_tokens()
                .into_iter()
                .map(|t| t.to_string())
                .filter(|token| is_expected_token(token))
                .map(|token| format!("`{token}`"))
                .collect()
        })
        .unwrap_or_default();
    // Pest places the error where the last rule failed, which is often the start of
    // the declaration (`let x 1`); the punctuation it tried further on says where the
    // text actually went wrong.
    let token_position = attempts
        .as_ref()
        .map(|a| a.max_position)
        .filter(|&p| p > rule_position && !tokens.is_empty());
    let at = base + token_position.unwrap_or(rule_position);
    let found = describe_found(text, at);
    let found_span = Span::new(
        at,
        at + found.1.max(1).min(text.len().saturating_sub(at).max(1)),
    );
    let (expected, help) = match (&error.variant, token_position) {
        (_, Some(_)) => expected_words(&[], tokens),
        (ErrorVariant::ParsingError { positives, .. }, None) => expected_words(positives, tokens),
        (ErrorVariant::CustomError { message }, None) => (message.clone(), None),
    };
    let at_line_start = at == 0 || text.as_bytes().get(at - 1) == Some(&b'\n');
    if expected == "valid syntax" && at_line_start {
        // A top-level line that does not start with a declaration keyword.
        let word = found.0.trim_matches('`');
        let keywords = ["import", "type", "enum", "let", "channel", "cluster"];
        let d = Diagnostic::error(
            Code::E0001,
            format!("expected a declaration, found {}", found.0),
        )
        .at(file, found_span, "not a declaration keyword");
        return match crate::diagnostic::did_you_mean(word, keywords) {
            Some(k) => d.help(k),
            None => d.help(
                "a file holds `import`, `type`, `enum`, `let`, `channel` and `cluster` declarations",
            ),
        };
    }
    let d = Diagnostic::error(
        Code::E0001,
        format!("expected {expected}, found {}", found.0),
    )
    .at(file, found_span, format!("expected {expected}"));
    d.help(help.unwrap_or_else(|| hint_for(&expected)))
}

/// A hint for a syntax error that the grammar's expectations do not explain better.
fn hint_for(expected: &str) -> String {
    let mentions = |token: &str| expected.contains(token);
    if mentions("`)`") || mentions("`]`") || mentions("`}`") {
        "a bracket opened before this point is not closed yet".into()
    } else if mentions("`then`") || mentions("`else`") {
        "a conditional is written `if condition then value else other`".into()
    } else if mentions("`in`") {
        "a comprehension is written `[item for item in list if condition]`".into()
    } else if mentions("`:` or `=`") {
        "bind a name with `let name = value` (or `let name: Type = value`)".into()
    } else if mentions("`:`") {
        "declare fields as `name: Type`, and write map entries as `\"key\": value`".into()
    } else if mentions("`=`") {
        "set a field with `name = value`".into()
    } else {
        "the text up to here is incomplete: look for a missing value, comma or operand".into()
    }
}

/// What sits at `at`: a word, a symbol or the end of the file, and its byte length.
fn describe_found(text: &str, at: usize) -> (String, usize) {
    let rest = &text[at.min(text.len())..];
    let Some(first) = rest.chars().next() else {
        return ("end of file".into(), 0);
    };
    if first.is_alphanumeric() || first == '_' {
        let word: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let len = word.len();
        return (format!("`{word}`"), len);
    }
    if first == '"' {
        return ("a string".into(), 1);
    }
    (format!("`{first}`"), first.len_utf8())
}

/// Punctuation and the keywords that continue a construct are worth naming.
fn is_expected_token(token: &str) -> bool {
    matches!(
        token,
        ")" | "]" | "}" | "{" | "(" | "=" | ":" | "," | "then" | "else" | "in" | "\""
    )
}

fn expected_words(rules: &[Rule], tokens: Vec<String>) -> (String, Option<String>) {
    let mut words: Vec<String> = Vec::new();
    let mut help = None;
    for rule in rules {
        let word = match rule {
            Rule::EOI => "end of file",
            Rule::import_decl
            | Rule::type_decl
            | Rule::enum_decl
            | Rule::let_decl
            | Rule::channel_decl
            | Rule::cluster_decl => {
                help = Some(
                    "a file holds `import`, `type`, `enum`, `let`, `channel` and `cluster` declarations"
                        .to_string(),
                );
                "a declaration"
            }
            Rule::ident | Rule::name | Rule::path => "a name",
            Rule::type_name
            | Rule::named_type
            | Rule::type_expr
            | Rule::list_type
            | Rule::map_type => "a type",
            Rule::plain_string | Rule::string => "a string",
            Rule::block => "`{`",
            Rule::field_assign | Rule::nested_block | Rule::spread => {
                help = Some(
                    "inside a block, write `field = value`, `name { … }` or `...other`".into(),
                );
                "a field"
            }
            Rule::field_decl | Rule::check_decl | Rule::attribute => {
                help = Some(
                    "inside a type, write `field: Type = default` or `check cond : \"message\"`"
                        .into(),
                );
                "a field declaration"
            }
            Rule::variant => "an enum variant",
            Rule::expr
            | Rule::if_expr
            | Rule::paren
            | Rule::comprehension
            | Rule::list
            | Rule::map
            | Rule::record
            | Rule::number
            | Rule::boolean
            | Rule::null
            | Rule::call
            | Rule::neg
            | Rule::not => "an expression",
            Rule::infix => "an operator",
            Rule::field_access | Rule::index => "`.` or `[`",
            Rule::map_entry => "a map entry `\"key\": value`",
            Rule::interpolation => "`${`",
            Rule::optional_mark => "`?`",
            _ => "valid syntax",
        };
        if !words.iter().any(|w| w == word) {
            words.push(word.to_string());
        }
    }
    for token in tokens {
        if !words.contains(&token) {
            words.push(token);
        }
    }
    // Keep the message short: a missing closer is the likeliest mistake, and
    // "an expression" already covers the tokens that start one.
    let closes = |w: &str| matches!(w, "`)`" | "`]`" | "`}`" | "`else`" | "`then`" | "`in`");
    if words.iter().any(|w| closes(w)) {
        words.retain(|w| w != "an operator" && w != "`.` or `[`");
    }
    words.retain(|w| w != "`.` or `[`");
    if words.iter().any(|w| w == "an expression") {
        words.retain(|w| !matches!(w.as_str(), "`\"`" | "`(`" | "`{`" | "`[`"));
    }
    if words.iter().any(|w| w == "a field") {
        words.retain(|w| w != "a name");
    }
    if words.len() > 1 {
        words.retain(|w| w != "valid syntax");
    }
    if words.is_empty() {
        words.push("valid syntax".into());
    }
    let text = match words.len() {
        1 => words[0].to_string(),
        n => format!("{} or {}", words[..n - 1].join(", "), words[n - 1]),
    };
    (text, help)
}
