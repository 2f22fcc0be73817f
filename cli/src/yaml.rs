//! YAML in and out, through serde-saphyr (serde_yaml is unmaintained
//! upstream). An error names where it is from the parser's own data: the
//! line from the error's location, the key path from `serde_path_to_error`
//! (`kafka.partitions`), never from the message's text.

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Parses one document of `text` (from `origin`, named in errors) into `T`.
/// Errors read `origin, line L: key.path: problem`.
pub fn parse<T: DeserializeOwned>(text: &str, origin: &str) -> anyhow::Result<T> {
    let mut path = String::new();
    let parsed = serde_saphyr::with_deserializer_from_str(text, |deserializer| {
        serde_path_to_error::deserialize(deserializer).map_err(|error| {
            path = error.path().to_string();
            error.into_inner()
        })
    });
    parsed.map_err(|error| anyhow::anyhow!("{}", describe(&error, &path, origin)))
}

/// Every document of a multi-document `text` (`---` between them), as JSON
/// values; empty documents are skipped.
pub fn parse_documents(text: &str, origin: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(text)
        .map_err(|error| anyhow::anyhow!("{}", describe(&error, "", origin)))?;
    Ok(documents.into_iter().filter(|d| !d.is_null()).collect())
}

/// `value` as a YAML document.
pub fn to_string<T: Serialize>(value: &T) -> anyhow::Result<String> {
    serde_saphyr::to_string(value).context("writing YAML")
}

/// `origin, line L: path: problem`, from the error's location and the path
/// serde walked (`.` when the problem is the whole document).
fn describe(error: &serde_saphyr::Error, path: &str, origin: &str) -> String {
    let problem = problem_of(error);
    let problem = match path {
        "" | "." => problem,
        path => format!("{path}: {problem}"),
    };
    match error.location() {
        Some(location) if location.line() > 0 => {
            format!("{origin}, line {}: {problem}", location.line())
        }
        _ => format!("{origin}: {problem}"),
    }
}

/// The problem alone: the error's first line, without the parser's own
/// position suffix and source snippet (bfctl says where, above).
fn problem_of(error: &serde_saphyr::Error) -> String {
    let text = error.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("").trim();
    match first.rsplit_once(" at line ") {
        Some((problem, _)) => problem.to_string(),
        None => first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: u8,
    }

    #[test]
    fn errors_name_the_key_path_and_the_line() {
        let unknown = parse::<Outer>("name: a\ninner:\n  count: 1\n  cuont: 2\n", "f.yaml")
            .unwrap_err()
            .to_string();
        assert!(unknown.starts_with("f.yaml, line 4: inner"), "{unknown}");
        assert!(unknown.contains("cuont"), "{unknown}");
        let bad = parse::<Outer>("name: a\ninner:\n  count: many\n", "f.yaml")
            .unwrap_err()
            .to_string();
        assert!(bad.starts_with("f.yaml, line 3: inner.count: "), "{bad}");
        assert!(!bad.contains('\n'), "one line: {bad}");
    }

    #[test]
    fn documents_round_trip() {
        let docs = parse_documents("a: 1\n---\n---\nb: [x, \"on\"]\n", "t").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["b"][1], "on");
        let text = to_string(&docs[1]).unwrap();
        let again = parse_documents(&text, "t").unwrap();
        assert_eq!(again[0], docs[1]);
    }
}
