//! One real-looking access-token payload per provider, and the shapes that must never grant.

use serde_json::json;

use super::*;
use crate::PolicyExt;

fn claims(value: serde_json::Value) -> ProviderClaims {
    serde_json::from_value(value).unwrap()
}

#[test]
fn auth0_scope_string_and_permissions() {
    let token = claims(json!({
        "iss": "https://tenant.eu.auth0.com/", "sub": "auth0|64f1c2a9",
        "aud": ["https://ads-api.example", "https://tenant.eu.auth0.com/userinfo"],
        "iat": 1_800_000_000, "exp": 1_800_086_400, "azp": "Xk3sJ4",
        "scope": "openid profile read:ads", "permissions": ["read:ads", "delete:ads"]
    }));
    assert_eq!(token.sub, "auth0|64f1c2a9");
    assert!(HasScope::new("read:ads").allows(&token));
    assert!(HasScope::new("openid").allows(&token));
    assert!(!HasScope::new("read").allows(&token), "no prefix match");
    assert!(
        !HasScope::new("READ:ADS").allows(&token),
        "case-sensitive (RFC 6749 §3.3)"
    );
    assert!(HasPermission::new("delete:ads").allows(&token));
    assert!(!HasPermission::new("create:ads").allows(&token));
}

#[test]
fn entra_id_scp_string_and_app_roles() {
    let delegated = claims(json!({
        "aud": "api://6e74172b-be56-4843-9ff4-e66a39bb12e3", "ver": "2.0",
        "iss": "https://login.microsoftonline.com/72f988bf/v2.0", "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        "scp": "Ads.Read Ads.Write", "tid": "72f988bf", "oid": "00000000-0000-0000-66f3-3332eca7ea81"
    }));
    assert!(HasScope::new("Ads.Write").allows(&delegated));
    assert!(!HasScope::new("Ads.Delete").allows(&delegated));
    let application = claims(json!({
        "sub": "d8ad2a9f", "roles": ["Ads.Moderate", "Reports.Read"], "azpacr": "1"
    }));
    assert!(HasRole::new("Ads.Moderate").allows(&application));
    assert!(
        !HasScope::new("Ads.Moderate").allows(&application),
        "a role is not a scope"
    );
}

#[test]
fn okta_scp_array() {
    let token = claims(json!({
        "ver": 1, "iss": "https://dev-1.okta.com/oauth2/default", "aud": "api://default",
        "sub": "carol@example.com", "cid": "0oa1", "scp": ["openid", "ads.read"]
    }));
    assert!(HasScope::new("ads.read").allows(&token));
    assert!(!HasScope::new("ads.write").allows(&token));
}

#[test]
fn keycloak_realm_and_client_roles() {
    let token = claims(json!({
        "iss": "https://sso.example/realms/ads", "sub": "f1c2e3d4", "typ": "Bearer", "azp": "ads-web",
        "aud": ["ads-api", "account"], "scope": "openid email profile",
        "realm_access": {"roles": ["default-roles-ads", "offline_access", "advertiser"]},
        "resource_access": {
            "ads-api": {"roles": ["moderator"]},
            "account": {"roles": ["manage-account", "view-profile"]}
        }
    }));
    assert!(RealmRole::new("advertiser").allows(&token));
    assert!(
        !RealmRole::new("moderator").allows(&token),
        "a client role is not a realm role"
    );
    assert!(ClientRole::new("ads-api", "moderator").allows(&token));
    assert!(!ClientRole::new("account", "moderator").allows(&token));
    assert!(!ClientRole::new("billing", "manage-account").allows(&token));
    assert!(
        RealmRole::new("advertiser")
            .and(ClientRole::new("ads-api", "moderator"))
            .allows(&token)
    );
}

#[test]
fn unexpected_shapes_grant_nothing_and_still_decode() {
    let token = claims(json!({
        "sub": "x", "scope": 7, "scp": [1, "ok", null], "roles": {"admin": true},
        "permissions": "delete:ads", "realm_access": ["admin"],
        "resource_access": {"ads-api": "moderator"}
    }));
    assert!(!HasScope::new("7").allows(&token));
    assert!(
        HasScope::new("ok").allows(&token),
        "string items of a mixed array count"
    );
    assert!(!HasRole::new("admin").allows(&token));
    assert!(
        HasPermission::new("delete:ads").allows(&token),
        "one string is a one-item list"
    );
    assert!(!RealmRole::new("admin").allows(&token));
    assert!(!ClientRole::new("ads-api", "moderator").allows(&token));
    // No claims at all: an empty grant.
    let empty = claims(json!({}));
    for policy in [HasScope::new(""), HasScope::new("openid")] {
        assert!(!policy.allows(&empty));
    }
}

#[test]
fn claims_survive_a_round_trip() {
    let token = claims(json!({
        "sub": "a", "scope": "x y", "scp": ["z"], "roles": ["r"],
        "resource_access": {"c": {"roles": ["m"]}}
    }));
    let again: ProviderClaims =
        serde_json::from_str(&serde_json::to_string(&token).unwrap()).unwrap();
    assert_eq!(again, token);
    assert!(HasScope::new("z").allows(&again));
}
