//! Layered configuration: the committed `arbiter.yaml` as the defaults, a file and `ARBITER_*`
//! environment variables merged over it as one [`Tree`] and read once; the error of a refused
//! key, which each section's `validate` returns.

use serde_json::Value;

mod tree;

pub use tree::{Applied, DEFAULTS, Place, ReadError, Tree, VarError, defaults, section_with};

/// A configuration key whose value is refused, and why: what each section's `validate` returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidKey {
    /// The dotted key (`console.oidc.issuer`).
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

/// The path of the leaf whose keys, joined with `_`, are `name`. Keys may hold `_` themselves
/// (`api_key`, `api_key_file`): an exact key wins, else each key that is a prefix is tried.
pub fn leaf_path(node: &Value, name: &str) -> Option<Vec<String>> {
    let Value::Object(map) = node else {
        return None;
    };
    if map.get(name).is_some_and(|child| !child.is_object()) {
        return Some(vec![name.to_owned()]);
    }
    map.iter()
        .filter(|(key, child)| {
            child.is_object()
                && name.starts_with(key.as_str())
                && name.as_bytes().get(key.len()) == Some(&b'_')
        })
        .find_map(|(key, child)| {
            let mut path = leaf_path(child, &name[key.len() + 1..])?;
            path.insert(0, key.clone());
            Some(path)
        })
}

/// The value an environment variable gives a leaf, typed as the leaf it replaces: a list is
/// comma-separated (numbers stay numbers), a number or a boolean is parsed.
pub fn env_value(current: &Value, raw: &str) -> Result<Value, String> {
    match current {
        Value::Array(items) => Ok(Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| match s.parse::<u64>() {
                    // A list of numbers (`webhooks.retry_schedule_secs`) stays numeric.
                    Ok(n) if items.iter().all(Value::is_number) => Value::from(n),
                    _ => Value::String(s.to_owned()),
                })
                .collect(),
        )),
        Value::Number(_) => raw
            .trim()
            .parse::<u64>()
            .map(Value::from)
            .map_err(|_| format!("{raw:?} is not a whole number")),
        Value::Bool(_) => raw
            .trim()
            .parse::<bool>()
            .map(Value::Bool)
            .map_err(|_| format!("{raw:?} is not true or false")),
        _ => Ok(Value::String(raw.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_variable_finds_its_leaf_through_keys_that_hold_underscores() {
        let tree = json!({
            "listen": "a",
            "rate_limits": {"plans": {"starter": {"per_minute": 60}}},
            "providers": {"reality_ai": {"api_key": "", "api_key_file": ""}},
        });
        assert_eq!(leaf_path(&tree, "listen").unwrap(), ["listen"]);
        assert_eq!(
            leaf_path(&tree, "rate_limits_plans_starter_per_minute").unwrap(),
            ["rate_limits", "plans", "starter", "per_minute"]
        );
        assert_eq!(
            leaf_path(&tree, "providers_reality_ai_api_key_file").unwrap(),
            ["providers", "reality_ai", "api_key_file"]
        );
        assert_eq!(
            leaf_path(&tree, "providers_reality_ai_api_key").unwrap(),
            ["providers", "reality_ai", "api_key"]
        );
        assert!(leaf_path(&tree, "rate_limits").is_none());
        assert!(leaf_path(&tree, "home").is_none());
    }

    #[test]
    fn a_value_is_typed_as_the_leaf_it_replaces() {
        assert_eq!(env_value(&json!([5, 30]), "1, 2,3"), Ok(json!([1, 2, 3])));
        assert_eq!(
            env_value(&json!([]), "10.0.0.0/8, ::1/128"),
            Ok(json!(["10.0.0.0/8", "::1/128"]))
        );
        assert_eq!(env_value(&json!(60), " 5 "), Ok(json!(5)));
        assert_eq!(
            env_value(&json!(60), "soon"),
            Err("\"soon\" is not a whole number".to_owned())
        );
        assert_eq!(env_value(&json!(true), "false"), Ok(json!(false)));
        assert!(env_value(&json!(true), "no").is_err());
        assert_eq!(env_value(&json!("a"), "b"), Ok(json!("b")));
    }
}
