//! Roles and the areas of the console each may use.

use std::fmt;
use std::str::FromStr;

/// A console user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything: policies, users, and every other area.
    Admin,
    /// Review queues.
    Reviewer,
    /// The audit trail, read only.
    Auditor,
    /// Scans and their results.
    Analyst,
}

/// An area of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// `/console/scan`.
    Scan,
    /// `/console/requests`.
    Requests,
    /// `/console/review`.
    Review,
    /// `/console/audit`.
    Audit,
    /// `/console/policies`.
    Policies,
    /// `/console/users`.
    Users,
}

/// An area of the console as a type, for code that names the area it serves in a type (the
/// server's extractor of a signed-in person, `SignedIn<area::Review>`).
pub trait Gate {
    /// The area.
    const AREA: Area;
}

/// The console's areas as types, each the [`Gate`] of its [`Area`].
pub mod area {
    macro_rules! areas {
        ($($name:ident),*) => {$(
            /// An area of the console, as a type.
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            pub struct $name;

            impl super::Gate for $name {
                const AREA: super::Area = super::Area::$name;
            }
        )*};
    }
    areas!(Scan, Requests, Review, Audit, Policies, Users);
}

impl Role {
    /// Every role, in the order the CLI lists them.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Reviewer, Role::Auditor, Role::Analyst];

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Reviewer => "reviewer",
            Role::Auditor => "auditor",
            Role::Analyst => "analyst",
        }
    }

    /// The role names, comma-separated.
    pub fn names() -> String {
        Role::ALL.map(Role::as_str).join(", ")
    }

    /// Whether the role may use an area.
    pub fn may(self, area: Area) -> bool {
        match self {
            Role::Admin => true,
            Role::Reviewer => matches!(area, Area::Review | Area::Requests),
            Role::Auditor => matches!(area, Area::Audit | Area::Requests),
            Role::Analyst => matches!(area, Area::Scan | Area::Requests),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not a role.
#[derive(Debug, thiserror::Error)]
#[error("role must be one of {names}; found {0:?}", names = Role::names())]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_reach_their_areas_only() {
        assert!(Role::Admin.may(Area::Users));
        assert!(Role::Reviewer.may(Area::Review));
        assert!(!Role::Reviewer.may(Area::Users));
        assert!(!Role::Reviewer.may(Area::Scan));
        assert!(Role::Auditor.may(Area::Audit));
        assert!(!Role::Auditor.may(Area::Review));
        assert!(Role::Analyst.may(Area::Scan));
        assert!(!Role::Analyst.may(Area::Policies));
        assert_eq!("auditor".parse::<Role>().ok(), Some(Role::Auditor));
        let err = "root".parse::<Role>().expect_err("not a role");
        assert_eq!(
            err.to_string(),
            "role must be one of admin, reviewer, auditor, analyst; found \"root\""
        );
    }
}
