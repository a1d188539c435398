//! Typed, prefixed, time-sortable identifiers (`req_01J...`).
//!
//! Every id is `<prefix>_<ULID>` when Arbiter makes it. Ids received from elsewhere (a vendor's
//! `req_9f3a2b1c4d5e6f`) are accepted when they carry the right prefix and a non-empty
//! alphanumeric body, so the guide's examples parse unchanged.

use std::fmt;
use std::str::FromStr;

/// Why a string is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid id: expected `{prefix}_` followed by letters and digits")]
pub struct IdParseError {
    /// The prefix that was expected.
    pub prefix: &'static str,
    /// The string that was given.
    pub value: String,
}

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with (without the underscore).
            pub const PREFIX: &'static str = $prefix;

            /// A new id, sortable by creation time.
            pub fn new() -> Self {
                Self(format!("{}_{}", $prefix, ulid::Ulid::new()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let body = s
                    .strip_prefix($prefix)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .filter(|body| {
                        !body.is_empty()
                            && body.len() <= 64
                            && body.bytes().all(|b| b.is_ascii_alphanumeric())
                    });
                match body {
                    Some(_) => Ok(Self(s.to_owned())),
                    None => Err(IdParseError { prefix: $prefix, value: s.to_owned() }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(concat!("^", $prefix, "_[0-9A-Za-z]+$")))
                    .examples([concat!($prefix, "_01JH0000000000000000000001")])
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

define_id!(
    /// One analysis request (`req_`).
    RequestId,
    "req"
);
define_id!(
    /// A batch of analysis requests (`batch_`).
    BatchId,
    "batch"
);
define_id!(
    /// A webhook message, the same on every retry (`msg_`).
    MessageId,
    "msg"
);
define_id!(
    /// A registered webhook endpoint (`ep_`).
    EndpointId,
    "ep"
);
define_id!(
    /// An API key's public id (`key_`).
    KeyId,
    "key"
);
define_id!(
    /// A human-review queue item (`rev_`).
    ReviewId,
    "rev"
);

define_id!(
    /// A proposed policy version awaiting a second person's approval (`prop_`).
    ProposalId,
    "prop"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_carry_their_prefix_and_sort_by_time() {
        let first = RequestId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = RequestId::new();
        assert!(first.as_str().starts_with("req_"));
        assert_eq!(first.as_str().len(), 4 + 26);
        assert!(first < second);
    }

    #[test]
    fn parsing_checks_the_prefix_and_body() {
        assert!("req_9f3a2b1c4d5e6f".parse::<RequestId>().is_ok());
        assert!("batch_7a8b9c0d1e2f".parse::<BatchId>().is_ok());
        assert!("batch_7a8b9c0d1e2f".parse::<RequestId>().is_err());
        assert!("req_".parse::<RequestId>().is_err());
        assert!("req_a-b".parse::<RequestId>().is_err());
        assert!("requ_abc".parse::<RequestId>().is_err());
    }

    #[test]
    fn serde_round_trips_and_rejects_foreign_ids() {
        let id = KeyId::new();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<KeyId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<KeyId>("\"ep_123\"").is_err());
    }
}
