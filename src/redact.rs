//! What source text may show outside flotilla: quoted lines (diagnostics, hover) never
//! show the arguments of a `secret(…)` call, and control characters from source (ESC,
//! BEL, …) are printed escaped, so a file cannot drive the terminal that shows an error.
//!
//! The redacted form of a secret carries a digest so that a change stays visible in
//! diffs and plans. An unkeyed hash of the value would let anyone who sees that form
//! (a pull-request comment, a CI log) test guesses offline, so the digest is an
//! HMAC-SHA-256 under a per-repository key that never enters git: see [`key_for_fleet`].

use std::borrow::Cow;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rand::TryRngCore;
use sha2::{Digest, Sha256};

/// What a redacted `secret(…)` argument list is shown as.
pub const HIDDEN: &str = "…";

/// Byte ranges of `text` holding the arguments of `secret(…)` calls (between the
/// parentheses). A call left open runs to the end of the text: when in doubt, hide.
pub fn secret_arguments(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut ranges = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("secret") {
        let at = from + found;
        from = at + "secret".len();
        let starts_word = at == 0 || !is_ident_byte(bytes[at - 1]);
        let open = from + count_while(&bytes[from..], |b| b.is_ascii_whitespace());
        if !starts_word || bytes.get(open) != Some(&b'(') {
            continue;
        }
        let end = closing_paren(bytes, open + 1);
        ranges.push(open + 1..end);
        from = end;
    }
    ranges
}

/// `text[range]` as it may be shown: bytes inside `hidden` ranges replaced by
/// [`HIDDEN`] (once per run) and control characters escaped. `range` must lie on
/// character boundaries.
pub fn shown(text: &str, range: Range<usize>, hidden: &[Range<usize>]) -> String {
    let mut out = String::new();
    let mut in_hidden = false;
    for (offset, c) in text[range.clone()].char_indices() {
        let at = range.start + offset;
        if hidden.iter().any(|h| h.contains(&at)) {
            if !in_hidden {
                out.push_str(HIDDEN);
            }
            in_hidden = true;
            continue;
        }
        in_hidden = false;
        push_escaped(&mut out, c);
    }
    out
}

/// `text` with every control character except newline and tab escaped (`\u{1b}`).
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// `text` with the arguments of every `secret(…)` call hidden and control characters
/// escaped: a line of source as it may be shown.
pub fn source_line(text: &str) -> String {
    shown(text, 0..text.len(), &secret_arguments(text))
}

fn push_escaped(out: &mut String, c: char) {
    if is_escaped(c) {
        out.extend(c.escape_unicode());
    } else {
        out.push(c);
    }
}

fn is_escaped(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn count_while(bytes: &[u8], keep: impl Fn(u8) -> bool) -> usize {
    bytes.iter().take_while(|b| keep(**b)).count()
}

/// Offset of the `)` that closes a parenthesis opened just before `from` (parentheses
/// inside string literals do not count), or the end of the text.
fn closing_paren(bytes: &[u8], from: usize) -> usize {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut i = from;
    while i < bytes.len() {
        match (in_string, bytes[i]) {
            (true, b'\\') => i += 1,
            (true, b'"') => in_string = false,
            // Strings end at a line's end (the grammar has no multi-line strings).
            (true, b'\n') => in_string = false,
            (false, b'"') => in_string = true,
            (false, b'(') => depth += 1,
            (false, b')') if depth == 0 => return i,
            (false, b')') => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

// ---- keyed digest of secret values ---------------------------------------------------

/// Environment variable naming the digest key file to use instead of the repository's
/// own: CI sets it to a key kept in its secret store, so every run (and every engineer
/// who is given the same key) renders the same redacted forms and diffs stay stable.
pub const KEY_FILE_VARIABLE: &str = "FLOTILLA_SECRET_KEY_FILE";

/// The key's place inside the repository (or the fleet directory outside git).
pub const KEY_FILE: &str = ".flotilla/secret-digest.key";

/// Shortest key accepted from a file: shorter keys make guesses cheap again.
const MIN_KEY_BYTES: usize = 16;

/// Bytes of OS randomness in a newly created key.
const NEW_KEY_BYTES: usize = 32;

/// The key the redacted forms of this process are computed with; none until a command
/// that shows secrets installs one (the language server and library callers show
/// secrets without a digest).
static KEY: RwLock<Option<Arc<DigestKey>>> = RwLock::new(None);

/// A secret digest key. Deliberately neither `Debug` nor `Display`.
pub struct DigestKey {
    bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the secret digest key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the secret digest key {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the secret digest key {path} holds {found} bytes; a key needs at least {MIN_KEY_BYTES} \
         (delete the file to have flotilla create a new random one)"
    )]
    TooShort { path: PathBuf, found: usize },
    #[error("cannot read operating system randomness for a new secret digest key: {0}")]
    Randomness(String),
}

impl DigestKey {
    /// A key from its bytes (at least 16).
    pub fn from_bytes(bytes: &[u8]) -> Option<DigestKey> {
        (bytes.len() >= MIN_KEY_BYTES).then(|| DigestKey {
            bytes: bytes.to_vec(),
        })
    }

    /// HMAC-SHA-256 (RFC 2104) of `message` under this key.
    fn hmac(&self, message: &[u8]) -> [u8; 32] {
        const BLOCK: usize = 64;
        let mut block_key = [0u8; BLOCK];
        if self.bytes.len() > BLOCK {
            block_key[..32].copy_from_slice(&Sha256::digest(&self.bytes));
        } else {
            block_key[..self.bytes.len()].copy_from_slice(&self.bytes);
        }
        let padded = |pad: u8| block_key.map(|b| b ^ pad);
        let inner = Sha256::new()
            .chain_update(padded(0x36))
            .chain_update(message)
            .finalize();
        Sha256::new()
            .chain_update(padded(0x5c))
            .chain_update(inner)
            .finalize()
            .into()
    }
}

/// Use `key` for every redacted form this process shows from now on.
pub fn use_key(key: DigestKey) {
    let mut slot = KEY.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    *slot = Some(Arc::new(key));
}

/// The digest shown in a secret's redacted form: the first 64 bits of the keyed HMAC of
/// its value, hex; `None` when no key is installed, and then no digest is shown at all.
pub fn secret_digest(value: &str) -> Option<String> {
    let key = KEY
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()?;
    Some(crate::digest::hex(&key.hmac(value.as_bytes())[..8]))
}

/// The key for the fleet at `fleet` (a file or directory): the file named by
/// `FLOTILLA_SECRET_KEY_FILE` if set, else `.flotilla/secret-digest.key` at the root of
/// the git repository holding the fleet (the fleet's directory outside git), created on
/// first use from OS randomness, readable by its owner only, with `.flotilla/` ignored
/// by git through a `.gitignore` of its own.
pub fn key_for_fleet(fleet: &Path) -> Result<DigestKey, KeyError> {
    if let Some(path) = std::env::var_os(KEY_FILE_VARIABLE).filter(|p| !p.is_empty()) {
        return read_key(Path::new(&path));
    }
    let dir = if fleet.is_dir() {
        fleet.to_path_buf()
    } else {
        fleet.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let root = crate::git::Repo::discover(&dir)
        .map(|repo| repo.root)
        .unwrap_or(dir);
    let path = root.join(KEY_FILE);
    match read_key(&path) {
        Err(KeyError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            create_key(&path)
        }
        other => other,
    }
}

/// A key file holds the key's bytes; surrounding whitespace is not part of the key, so
/// a key pasted into a CI secret with a trailing newline still matches.
fn read_key(path: &Path) -> Result<DigestKey, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let key = bytes.trim_ascii();
    DigestKey::from_bytes(key).ok_or_else(|| KeyError::TooShort {
        path: path.to_path_buf(),
        found: key.len(),
    })
}

/// Create a new random key at `path` (hex text, so it can be copied into a CI secret).
/// Two processes racing here agree: the one that loses the exclusive create reads the
/// winner's key.
fn create_key(path: &Path) -> Result<DigestKey, KeyError> {
    let create_error = |source| KeyError::Create {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(create_error)?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        // The same file the local world writes: everything in `.flotilla/` stays local.
        std::fs::write(&ignore, "*\n").map_err(create_error)?;
    }
    let mut random = [0u8; NEW_KEY_BYTES];
    rand::rngs::OsRng
        .try_fill_bytes(&mut random)
        .map_err(|e| KeyError::Randomness(e.to_string()))?;
    let text = crate::digest::hex(&random);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(create_error)?;
            Ok(DigestKey {
                bytes: text.into_bytes(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key(path),
        Err(e) => Err(create_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_arguments_are_hidden_in_source_lines() {
        assert_eq!(
            source_line(r#"  db = secret("db", "hunter2")  // ok"#),
            r#"  db = secret(…)  // ok"#
        );
        assert_eq!(
            source_line(r#"a = secret ( "x)", "p\")" ) + my_secret("x")"#),
            r#"a = secret (…) + my_secret("x")"#
        );
        assert_eq!(source_line(r#"x = secret("open"#), "x = secret(…");
    }

    /// RFC 4231 test cases 1 and 6 (a key longer than SHA-256's block).
    #[test]
    fn the_digest_is_hmac_sha256() {
        let hmac = |key: &[u8], message: &str| {
            crate::digest::hex(&DigestKey::from_bytes(key).unwrap().hmac(message.as_bytes()))
        };
        assert_eq!(
            hmac(&[0x0b; 20], "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hmac(
                &[0xaa; 131],
                "Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        assert!(DigestKey::from_bytes(&[1; 15]).is_none());
    }

    #[test]
    fn control_characters_are_escaped_but_not_newlines_or_tabs() {
        assert_eq!(
            escape_controls("a\x1b[31mb\x07\tc\n"),
            "a\\u{1b}[31mb\\u{7}\tc\n"
        );
        assert!(matches!(escape_controls("plain"), Cow::Borrowed("plain")));
    }
}
