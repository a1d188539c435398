//! Layered configuration: the error of a refused key, and the generic pieces of reading `ARBITER_*` environment variables onto
//! a configuration tree (the tree is the serialized configuration, as JSON values).

use serde_json::Value;

/// A configuration key whose value is refused, and why: what each section's `validate` returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidKey {
    /// The dotted key (`console.oidc.issuer`).
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

/// The leaf whose path, joined with `_`, is `name`. Keys may hold `_` themselves
/// (`api_key`, `api_key_file`): an exact key wins, else each key that is a prefix is tried.
pub fn find_leaf<'a>(node: &'a mut Value, name: &str) -> Option<&'a mut Value> {
    let Value::Object(map) = node else {
        return None;
    };
    if map.get(name).is_some_and(|child| !child.is_object()) {
        return map.get_mut(name);
    }
    let key = map
        .iter()
        .filter(|(key, child)| {
            child.is_object()
                && name.starts_with(key.as_str())
                && name.as_bytes().get(key.len()) == Some(&b'_')
        })
        .map(|(key, _)| key.clone())
        .find(|key| {
            let mut probe = map.get(key).cloned().unwrap_or_default();
            find_leaf(&mut probe, &name[key.len() + 1..]).is_some()
        })?;
    find_leaf(map.get_mut(&key)?, &name[key.len() + 1..])
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
        let mut tree = json!({
            "listen": "a",
            "rate_limits": {"plans": {"starter": {"per_minute": 60}}},
            "providers": {"reality_ai": {"api_key": "", "api_key_file": ""}},
        });
        assert_eq!(find_leaf(&mut tree, "listen").cloned(), Some(json!("a")));
        assert_eq!(
            find_leaf(&mut tree, "rate_limits_plans_starter_per_minute").cloned(),
            Some(json!(60))
        );
        *find_leaf(&mut tree, "providers_reality_ai_api_key_file").unwrap() = json!("/k");
        assert_eq!(tree["providers"]["reality_ai"]["api_key_file"], "/k");
        assert_eq!(tree["providers"]["reality_ai"]["api_key"], "");
        assert!(find_leaf(&mut tree, "rate_limits").is_none());
        assert!(find_leaf(&mut tree, "home").is_none());
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
