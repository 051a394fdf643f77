//! Document URIs ↔ file paths, and the on-disk copy of the embedded stdlib that
//! go-to-definition can point editors at.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use lsp_types::Uri;

use crate::resolve::STDLIB;
use crate::source::normalize;

/// The path of a `file:` URI, percent-decoded and normalised.
pub(crate) fn uri_to_path(uri: &Uri) -> Result<PathBuf, String> {
    let text = uri.as_str();
    let rest = text
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("file://"))
        .map(|_| &text[7..])
        .ok_or_else(|| format!("not a file URI: {text}"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if !authority.is_empty() && !authority.eq_ignore_ascii_case("localhost") {
        return Err(format!(
            "file URIs on other hosts are not supported: {text}"
        ));
    }
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if path.is_empty() {
        return Err(format!("file URI without a path: {text}"));
    }
    let bytes = percent_decode(path).ok_or_else(|| format!("bad percent-encoding in {text}"))?;
    Ok(normalize(&bytes_to_path(bytes)?))
}

/// The `file:` URI of an absolute path.
pub(crate) fn path_to_uri(path: &Path) -> Option<Uri> {
    let mut text = String::from("file://");
    let bytes = path_bytes(path)?;
    if bytes.first() != Some(&b'/') {
        text.push('/');
    }
    for &byte in &bytes {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            text.push(char::from(byte));
        } else {
            text.push_str(&format!("%{byte:02X}"));
        }
    }
    Uri::from_str(&text).ok()
}

fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        if byte == b'%' {
            let high = char::from(bytes.next()?).to_digit(16)?;
            let low = char::from(bytes.next()?).to_digit(16)?;
            out.push((high * 16 + low) as u8);
        } else {
            out.push(byte);
        }
    }
    Some(out)
}

#[cfg(unix)]
fn bytes_to_path(bytes: Vec<u8>) -> Result<PathBuf, String> {
    use std::os::unix::ffi::OsStringExt;
    Ok(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

#[cfg(not(unix))]
fn bytes_to_path(bytes: Vec<u8>) -> Result<PathBuf, String> {
    let text = String::from_utf8(bytes).map_err(|_| "file URI is not UTF-8".to_string())?;
    // `/C:/dir` → `C:/dir`
    let text = match text.as_bytes() {
        [b'/', drive, b':', ..] if drive.is_ascii_alphabetic() => text[1..].to_string(),
        _ => text,
    };
    Ok(PathBuf::from(text))
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    path.is_absolute()
        .then(|| path.as_os_str().as_bytes().to_vec())
}

#[cfg(not(unix))]
fn path_bytes(path: &Path) -> Option<Vec<u8>> {
    let text = path.to_str()?.replace('\\', "/");
    path.is_absolute().then(|| text.into_bytes())
}

/// Where the embedded stdlib is written so editors can open it: `<stdlib>/std/aws.flt`
/// in the front end is `TEMP/flotilla-stdlib-VERSION/std/aws.flt` on disk.
pub(crate) struct StdlibCache {
    dir: PathBuf,
    written: bool,
}

const STDLIB_PREFIX: &str = "<stdlib>";

impl StdlibCache {
    pub(crate) fn new() -> StdlibCache {
        let dir =
            std::env::temp_dir().join(format!("flotilla-stdlib-{}", env!("CARGO_PKG_VERSION")));
        StdlibCache {
            dir: normalize(&dir),
            written: false,
        }
    }

    pub(crate) fn is_stdlib(path: &Path) -> bool {
        path.starts_with(STDLIB_PREFIX)
    }

    /// Whether `path` is one of the written stdlib copies (opened from a definition).
    pub(crate) fn contains(&self, path: &Path) -> bool {
        path.starts_with(&self.dir)
    }

    /// The front end's name for a written stdlib copy.
    pub(crate) fn stdlib_path(&self, path: &Path) -> Option<PathBuf> {
        let relative = path.strip_prefix(&self.dir).ok()?;
        Some(Path::new(STDLIB_PREFIX).join(relative))
    }

    /// The URI of a front-end path; stdlib paths become the written copy.
    pub(crate) fn uri(&mut self, path: &Path) -> Option<Uri> {
        match path.strip_prefix(STDLIB_PREFIX) {
            Ok(relative) => {
                self.write()?;
                path_to_uri(&self.dir.join(relative))
            }
            Err(_) => path_to_uri(path),
        }
    }

    fn write(&mut self) -> Option<()> {
        if self.written {
            return Some(());
        }
        for (name, text) in STDLIB {
            let file = self.dir.join(format!("{name}.flt"));
            // Another server of the same version may have written it already.
            if std::fs::read(&file).ok().as_deref() == Some(text.as_bytes()) {
                continue;
            }
            std::fs::create_dir_all(file.parent()?).ok()?;
            std::fs::write(&file, text).ok()?;
        }
        self.written = true;
        Some(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn file_uris_round_trip_with_spaces_and_non_ascii() {
        let path = Path::new("/tmp/my fleet/é𝄞.flt");
        let uri = path_to_uri(path).unwrap();
        assert_eq!(
            uri.as_str(),
            "file:///tmp/my%20fleet/%C3%A9%F0%9D%84%9E.flt"
        );
        assert_eq!(uri_to_path(&uri).unwrap(), path);
    }

    #[test]
    fn other_schemes_and_hosts_are_refused() {
        for text in [
            "untitled:Untitled-1",
            "file://server/share/a.flt",
            "https://x/a.flt",
        ] {
            let uri = Uri::from_str(text).unwrap();
            assert!(uri_to_path(&uri).is_err(), "{text}");
        }
        let local = Uri::from_str("file://localhost/a/./b.flt").unwrap();
        assert_eq!(uri_to_path(&local).unwrap(), Path::new("/a/b.flt"));
    }
}
