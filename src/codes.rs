//! Every diagnostic code with its explanation (`flotilla explain CODE`). A code is a
//! variant of [`Code`]: an emitter cannot name a code that has no explanation, and a
//! test checks that every code is emitted somewhere.

/// Declares [`Code`] with one explanation per variant, so the two cannot drift apart.
macro_rules! codes {
    ($($code:ident => $explanation:expr,)*) => {
        /// A stable diagnostic code, `E0001`… for errors, `W0001`… for warnings; see
        /// `flotilla explain CODE`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($code,)*
        }

        impl Code {
            /// Every code, in order.
            pub const ALL: &[Code] = &[$(Code::$code,)*];

            /// The code as written in messages: `E0201`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$code => stringify!($code),)*
                }
            }

            /// What the code means and what usually fixes it.
            pub fn explanation(self) -> &'static str {
                match self {
                    $(Code::$code => $explanation,)*
                }
            }
        }
    };
}

codes! {
    E0001 => "Syntax error: the parser expected something else at this point. The message lists what would have been valid.",
    E0002 => "Unterminated string: a string literal has no closing quote before the end of its line.",
    E0004 => "Unknown escape in a string. Valid escapes are \\\" \\\\ \\n \\t \\r and \\$.",
    E0005 => "Nesting too deep: brackets, braces, parentheses and interpolations nest at most 64 levels. Split the expression with `let`.",
    E0006 => "A number literal does not fit: integers are 64-bit, floats must be finite.",
    E0007 => "Bad duration or quantity literal: durations use ms, s, m, h, d (`90s`, `3d`); quantities use m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei (`250m`, `2Gi`).",
    E0009 => "The file is not valid UTF-8.",
    E0011 => "Map types are written `{String: T}`; keys are always strings.",
    E0100 => "A path given on the command line cannot be read, or holds no .flt files.",
    E0101 => "An import cannot be found. Relative imports resolve from the importing file's directory and may name a file (with or without .flt) or a directory of .flt files.",
    E0102 => "Import cycle: modules import each other. Move the shared declarations into a third module.",
    E0103 => "Unknown name: not a field of an enclosing block, a `let`, a channel, or an imported name.",
    E0104 => "A name is declared twice in one module, or a `type` or `enum` takes the name of a builtin type (String, Int, Float, Bool, Duration, Quantity, Secret).",
    E0105 => "Unknown type name.",
    E0106 => "Two clusters have the same id. Ids name stacks and must be unique in the fleet.",
    E0107 => "Two node pools (or other labelled blocks) in one record have the same name.",
    E0108 => "A field is set twice in one block.",
    E0109 => "There is no such stdlib module (`std/...`).",
    E0110 => "An enum declares the same variant twice.",
    E0111 => "A type declares the same field twice.",
    E0112 => "Invalid attribute: `@label` goes on a String field, `@block(\"name\")` on a list-of-records field.",
    E0113 => "A type alias (`type NAME = TYPE`) refers back to itself; aliases name existing types and cannot be recursive.",
    E0114 => "An import alias (`import \"./pools\" as pools`) is used twice in one module: by two imports, or by an import and a `let`, type, enum or channel of the same name. The later one would hide the imported module; give each import its own alias or rename the declaration.",
    E0201 => "Unknown field or block for this record type; the message suggests the closest field.",
    E0202 => "Type mismatch: the value does not have the type the field or operation expects.",
    E0203 => "A required field (one without a default that is not optional) is not set.",
    E0204 => "Not a variant of the expected enum.",
    E0205 => "Unknown channel: no channel with this name is declared or imported.",
    E0206 => "A block was written for a field that is not a record.",
    E0207 => "A block label is missing where the record takes one (`node_pool \"NAME\" { … }`), or present where it takes none.",
    E0208 => "Unknown builtin function, or the wrong number of arguments.",
    E0209 => "An operator cannot be applied to these operand types.",
    E0211 => "Field access or indexing on a value that has no fields (or may be null).",
    E0212 => "A spread (`...x`) must be a record of the block's own type, or a list of records that the block takes as repeated blocks.",
    E0213 => "List elements have different types.",
    E0214 => "`null`, or a value that is always null (such as `null ?? null`), where a non-optional value is needed.",
    E0215 => "A value that cannot be interpolated into a string (a list, a record, or a Secret, which is never turned into plain text).",
    E0217 => "A field that the block label sets is also assigned in the block.",
    E0218 => "A map literal has the same key twice.",
    E0219 => "A record literal without a type name where no type is expected. Write `TypeName { … }`.",
    E0300 => "Internal error in the evaluator. Please report it with the input that triggers it.",
    E0301 => "Division by zero.",
    E0302 => "A `check` declared on a type failed for this value.",
    E0303 => "Arithmetic overflow.",
    E0304 => "Index out of range, missing map key, or an argument outside what a builtin accepts.",
    E0305 => "A value is defined in terms of itself (a cycle between lets or fields).",
    E0306 => "`cluster` is read by a default outside of any cluster.",
    E0307 => "The evaluated fleet does not fit flotilla's model (src/model.rs): a stdlib field was added, renamed or retyped without updating the model, or a duration is negative. The message names the field.",
    E0500 => "`--cluster` names a cluster that the fleet does not declare.",
    E0501 => "The config set lacks a required template: etcd.yaml.j2, cluster.yaml.j2 and node-pools/<profile>/{stack,userdata}.yaml.j2.",
    E0502 => "A node pool's `profile` has no node-pools/<profile>/ templates in the config set.",
    E0503 => "A template failed to render (an undefined variable, a bad filter argument, a syntax error); the label points into the template.",
    E0504 => "A rendered artifact is invalid: malformed YAML/JSON or a mapping with the same key twice; a CloudFormation template with a missing Type, a logical id that is not alphanumeric (at most 255 characters), more than 500 resources or 200 parameters, outputs or mappings, a dangling Ref/GetAtt/DependsOn, an Fn::FindInMap naming no mapping, a Condition or Fn::If naming no condition, or an unused parameter; a manifest without apiVersion/kind/name or with a name that is not DNS-1123, or a duplicate object; a deletions entry that could select too much (a namespaced kind without `namespace`, a cluster-scoped kind with one, an empty `selector` or `labels`, a selector of only negative requirements), that has a name that is not DNS-1123, or that removes what the manifests apply. See \"Validation of rendered output\" in docs/config-set.md.",
    E0505 => "The config set could not be read: the channel's config_ref is not a ref of the repository, the path does not exist at that ref, or the --config-set directory is unreadable.",
    W0001 => "Warning: a `let` that nothing reads. It is never evaluated, so a mistake in its value (even `12 / 0`) goes unnoticed. Use it, remove it, or start its name with `_` to keep it on purpose.",
}

impl Code {
    /// The code written `text` (any case), if there is one.
    pub fn parse(text: &str) -> Option<Code> {
        Code::ALL
            .iter()
            .copied()
            .find(|code| code.as_str().eq_ignore_ascii_case(text))
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Tests and tools compare codes with their written form.
impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for Code {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_written_in_order_and_parse_back() {
        for pair in Code::ALL.windows(2) {
            assert!(pair[0].as_str() < pair[1].as_str(), "{pair:?}");
        }
        for &code in Code::ALL {
            let text = code.as_str();
            assert!(
                text.len() == 5
                    && text.starts_with(['E', 'W'])
                    && text[1..].chars().all(|c| c.is_ascii_digit()),
                "{text}"
            );
            assert_eq!(Code::parse(text), Some(code));
            assert_eq!(Code::parse(&text.to_lowercase()), Some(code));
            assert!(!code.explanation().trim().is_empty(), "{text}");
        }
        assert_eq!(Code::parse("E9999"), None);
    }

    /// Every code is emitted somewhere: an explanation for a code that nothing reports
    /// would describe an error users never see. (That every emitted code has an
    /// explanation the type system ensures: emitters name a [`Code`].)
    #[test]
    fn every_code_is_emitted() {
        let mut sources = String::new();
        let mut dirs = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("codes.rs")
                {
                    sources.push_str(&std::fs::read_to_string(&path).unwrap());
                }
            }
        }
        let unused: Vec<&str> = Code::ALL
            .iter()
            .map(|code| code.as_str())
            .filter(|text| !sources.contains(&format!("Code::{text}")))
            .collect();
        assert!(unused.is_empty(), "explained but never emitted: {unused:?}");
    }
}
