//! Domain-input validation against a flow's JSON Schema, with errors that name the field.

use crate::FlowError;
use serde_json::Value;

/// A compiled JSON Schema (2020-12) for a flow's domain input.
pub struct FactSchema {
    schema: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for FactSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FactSchema")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl FactSchema {
    /// Compiles a schema; an invalid schema is a programming error reported here.
    pub fn new(schema: Value) -> Result<Self, String> {
        let validator = jsonschema::validator_for(&schema).map_err(|err| err.to_string())?;
        Ok(Self { schema, validator })
    }

    /// The schema document.
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// Validates an input; the error names the first offending field as a dotted path.
    pub fn validate(&self, input: &Value) -> Result<(), FlowError> {
        match self.validator.iter_errors(input).next() {
            None => Ok(()),
            Some(err) => {
                let pointer = err.instance_path().to_string();
                let field = pointer.trim_start_matches('/').replace('/', ".");
                let field = if field.is_empty() {
                    "input".to_owned()
                } else {
                    field
                };
                Err(FlowError {
                    field,
                    message: err.to_string(),
                })
            }
        }
    }

    /// The JSON type the schema declares at a dotted path (`number`, `string`, ...), if any.
    pub fn declared_type(&self, path: &str) -> Option<&str> {
        let mut node = &self.schema;
        for segment in path.split('.') {
            node = node.get("properties")?.get(segment)?;
        }
        match node.get("type")? {
            Value::String(kind) => Some(kind),
            Value::Array(kinds) => kinds
                .iter()
                .filter_map(Value::as_str)
                .find(|k| *k != "null"),
            _ => None,
        }
    }

    /// A command-line value (`12000`, `true`, `auto`) typed as the schema declares the field;
    /// a value that does not parse stays a string, so validation names the field.
    pub fn typed_value(&self, path: &str, raw: &str) -> Value {
        let parsed = match self.declared_type(path) {
            Some("number") => raw.parse::<i64>().ok().map(Value::from).or_else(|| {
                raw.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
            }),
            Some("integer") => raw.parse::<i64>().ok().map(Value::from),
            Some("boolean") => raw.parse::<bool>().ok().map(Value::Bool),
            _ => None,
        };
        parsed.unwrap_or_else(|| Value::String(raw.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> FactSchema {
        FactSchema::new(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "claim": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "id": { "type": "string" },
                        "amount": { "type": "number", "minimum": 0 },
                        "urgent": { "type": "boolean" }
                    }
                }
            }
        }))
        .unwrap()
    }

    #[test]
    fn errors_name_the_field() {
        let err = schema()
            .validate(&json!({"claim": {"amount": "lots"}}))
            .unwrap_err();
        assert_eq!(err.field, "claim.amount");
        assert!(err.message.contains("number"), "{}", err.message);
        let err = schema()
            .validate(&json!({"claim": {"colour": "red"}}))
            .unwrap_err();
        assert_eq!(err.field, "claim");
        assert!(err.message.contains("colour"), "{}", err.message);
        assert!(
            schema()
                .validate(&json!({"claim": {"id": "1001", "amount": 12.5}}))
                .is_ok()
        );
    }

    #[test]
    fn command_line_values_take_the_declared_type() {
        let schema = schema();
        assert_eq!(schema.typed_value("claim.amount", "12000"), json!(12000));
        assert_eq!(schema.typed_value("claim.amount", "99.5"), json!(99.5));
        assert_eq!(schema.typed_value("claim.id", "1001"), json!("1001"));
        assert_eq!(schema.typed_value("claim.urgent", "true"), json!(true));
        assert_eq!(schema.typed_value("claim.amount", "lots"), json!("lots"));
        assert_eq!(schema.typed_value("claim.unknown", "7"), json!("7"));
    }
}
