//! The authorization claims identity providers put in access tokens, read into one user type,
//! [`ProviderClaims`], with [`Policy`] types asking for each shape: OAuth scopes (`scope`, a
//! space-separated string, RFC 8693 §4.2 and RFC 9068 §2.2.3; `scp`, a string or an array, as
//! Microsoft Entra ID and Okta send it), Keycloak realm and client roles (`realm_access.roles`,
//! `resource_access.<client>.roles`), and `roles` / `permissions` arrays (Microsoft Entra app
//! roles, Auth0 RBAC).
//!
//! A claim of an unexpected JSON type reads as empty, never as a grant (OWASP Authorization
//! Cheat Sheet, "deny by default"), and never makes the whole user fail to decode.
//!
//! # Examples
//!
//! ```
//! use portcullis_core::{
//!     ClientRole, HasPermission, HasRole, HasScope, Policy, PolicyExt, ProviderClaims, RealmRole,
//! };
//!
//! let keycloak: ProviderClaims = serde_json::from_value(serde_json::json!({
//!     "sub": "f1c2", "scope": "openid profile ads:read",
//!     "realm_access": {"roles": ["offline_access", "advertiser"]},
//!     "resource_access": {"ads-api": {"roles": ["moderator"]}},
//! })).unwrap();
//! assert!(HasScope::new("ads:read").allows(&keycloak));
//! assert!(RealmRole::new("advertiser").and(ClientRole::new("ads-api", "moderator")).allows(&keycloak));
//! assert!(!ClientRole::new("billing", "moderator").allows(&keycloak));
//!
//! let auth0: ProviderClaims = serde_json::from_value(serde_json::json!({
//!     "sub": "auth0|64f1", "scope": "read:ads", "permissions": ["read:ads", "delete:ads"],
//! })).unwrap();
//! assert!(HasPermission::new("delete:ads").allows(&auth0));
//! assert!(!HasRole::new("admin").allows(&auth0));
//! ```

use std::{borrow::Cow, collections::BTreeMap};

use serde::{Deserialize, Deserializer, Serialize};

use crate::Policy;

/// The provider claims of a token, as a user type: `CurrentUser<ProviderClaims>`, or a field
/// of the application's own user type with `#[serde(flatten)]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderClaims {
    /// `sub`: who the token is about.
    #[serde(default)]
    pub sub: String,
    /// `scope`, one entry per scope (the claim is space-separated, RFC 8693 §4.2).
    #[serde(
        default,
        deserialize_with = "words",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub scope: Vec<String>,
    /// `scp` (Microsoft Entra: space-separated string; Okta: array), one entry per scope.
    #[serde(
        default,
        deserialize_with = "words",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub scp: Vec<String>,
    /// `roles` (Microsoft Entra app roles; many providers' custom role claim).
    #[serde(
        default,
        deserialize_with = "list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub roles: Vec<String>,
    /// `permissions` (Auth0 RBAC).
    #[serde(
        default,
        deserialize_with = "list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub permissions: Vec<String>,
    /// Keycloak `realm_access`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub realm_access: Option<RoleList>,
    /// Keycloak `resource_access`: roles per client.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub resource_access: BTreeMap<String, RoleList>,
}

/// `{"roles": [...]}`, the shape of Keycloak's `realm_access` and `resource_access` entries.
/// Anything but a JSON object reads as no roles (serde would take `["admin"]` for the struct).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RoleList {
    /// The roles.
    pub roles: Vec<String>,
}

impl<'de> Deserialize<'de> for RoleList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let roles = match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Object(mut object) => match object.remove("roles") {
                Some(serde_json::Value::String(role)) => vec![role],
                Some(serde_json::Value::Array(items)) => strings(items),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        Ok(Self { roles })
    }
}

impl ProviderClaims {
    /// Whether `scope` or `scp` grants `scope` (exact, case-sensitive: RFC 6749 §3.3).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.iter().chain(&self.scp).any(|s| s == scope)
    }

    /// Whether `roles` holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether `permissions` holds `permission`.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    /// Whether Keycloak's `realm_access.roles` holds `role`.
    pub fn has_realm_role(&self, role: &str) -> bool {
        self.realm_access
            .as_ref()
            .is_some_and(|access| access.roles.iter().any(|r| r == role))
    }

    /// Whether Keycloak's `resource_access.<client>.roles` holds `role`.
    pub fn has_client_role(&self, client: &str, role: &str) -> bool {
        self.resource_access
            .get(client)
            .is_some_and(|access| access.roles.iter().any(|r| r == role))
    }
}

/// A string or an array of strings, as JSON may carry a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<serde_json::Value>),
    Other(serde::de::IgnoredAny),
}

/// Space-separated scopes (RFC 6749 §3.3) or an array of them.
fn words<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(match StringOrList::deserialize(deserializer)? {
        StringOrList::One(text) => text.split_whitespace().map(str::to_owned).collect(),
        StringOrList::Many(items) => strings(items),
        StringOrList::Other(_) => Vec::new(),
    })
}

/// An array of strings, or one string as a one-item list; anything else is empty.
fn list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(match StringOrList::deserialize(deserializer)? {
        StringOrList::One(text) => vec![text],
        StringOrList::Many(items) => strings(items),
        StringOrList::Other(_) => Vec::new(),
    })
}

fn strings(items: Vec<serde_json::Value>) -> Vec<String> {
    items
        .into_iter()
        .filter_map(|item| match item {
            serde_json::Value::String(text) => Some(text),
            _ => None,
        })
        .collect()
}

/// The value if it has the expected shape, the default otherwise.
fn lenient<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned + Default>(
    deserializer: D,
) -> Result<T, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).unwrap_or_default())
}

macro_rules! one_name_policy {
    ($(#[$doc:meta])* $name:ident, $method:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(Cow<'static, str>);

        impl $name {
            /// The policy for this name.
            pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
                Self(name.into())
            }
        }

        impl Policy<ProviderClaims> for $name {
            fn allows(&self, user: &ProviderClaims) -> bool {
                user.$method(&self.0)
            }
        }
    };
}

one_name_policy!(
    /// Admits a token whose `scope` or `scp` grants this scope (RFC 8693 §4.2, RFC 9068).
    HasScope,
    has_scope
);
one_name_policy!(
    /// Admits a token whose `roles` claim holds this role (Microsoft Entra app roles).
    HasRole,
    has_role
);
one_name_policy!(
    /// Admits a token whose `permissions` claim holds this permission (Auth0 RBAC).
    HasPermission,
    has_permission
);
one_name_policy!(
    /// Admits a token whose Keycloak `realm_access.roles` holds this role.
    RealmRole,
    has_realm_role
);

/// Admits a token whose Keycloak `resource_access.<client>.roles` holds this role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRole {
    client: Cow<'static, str>,
    role: Cow<'static, str>,
}

impl ClientRole {
    /// The policy for `role` of `client` (the Keycloak client id).
    pub fn new(client: impl Into<Cow<'static, str>>, role: impl Into<Cow<'static, str>>) -> Self {
        Self {
            client: client.into(),
            role: role.into(),
        }
    }
}

impl Policy<ProviderClaims> for ClientRole {
    fn allows(&self, user: &ProviderClaims) -> bool {
        user.has_client_role(&self.client, &self.role)
    }
}

#[cfg(test)]
#[path = "provider_claims_tests.rs"]
mod tests;
