//! Provider-shaped access tokens through `BearerLayer` over HTTP: a Keycloak token's realm and
//! client roles and an Auth0 token's scope and permissions decide access with the core's
//! `ProviderClaims` policies, in a guard layer and in a handler signature. Refusal is 403
//! `insufficient_scope` (RFC 6750 §3.1), anonymous 401.

use axum::{Json, Router, routing::get};
use portcullis_core::{
    Authorized, ClientRole, CurrentUser, HasPermission, HasScope, Policy, PolicyExt,
    ProviderClaims, RealmRole, RequireLayer,
};
use portcullis_jwt::{Algorithm, BearerLayer, SigningKey, TokenIssuer, TokenVerifier, Validation};
use portcullis_tests::http::serve;
use reqwest::header;
use serde_json::{Value, json};

const AUDIENCE: &str = "ads-api";

/// Moderators: Keycloak client role `moderator` of `ads-api`, or Auth0 permission `delete:ads`.
#[derive(Default)]
struct Moderator;

impl Policy<ProviderClaims> for Moderator {
    fn allows(&self, claims: &ProviderClaims) -> bool {
        ClientRole::new("ads-api", "moderator")
            .or(HasPermission::new("delete:ads"))
            .allows(claims)
    }
}

fn app(verifier: TokenVerifier) -> Router {
    Router::new()
        .route(
            "/ads",
            get(
                |CurrentUser(claims): CurrentUser<ProviderClaims>| async move {
                    Json(json!({"sub": claims.sub}))
                },
            )
            .route_layer(RequireLayer::new(
                HasScope::new("ads:read").or(RealmRole::new("advertiser")),
            )),
        )
        .route(
            "/moderation",
            get(
                |moderator: Authorized<ProviderClaims, Moderator>| async move {
                    Json(json!({"moderator": moderator.sub}))
                },
            ),
        )
        .layer(BearerLayer::new(verifier).realm("ads"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_claims_decide_access_over_http() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let issuer = TokenIssuer::new(key)
        .issuer("https://sso.example/realms/ads")
        .audience(AUDIENCE);
    let verifier = TokenVerifier::new(
        issuer.key_set(),
        Validation::new()
            .issuer("https://sso.example/realms/ads")
            .audience(AUDIENCE),
    );
    let base = format!("http://{}", serve(app(verifier)).await);
    let keycloak_moderator = issuer
        .issue("f1c2", &json!({
            "typ": "Bearer", "azp": "ads-web", "scope": "openid profile",
            "realm_access": {"roles": ["default-roles-ads", "advertiser"]},
            "resource_access": {"ads-api": {"roles": ["moderator"]}, "account": {"roles": ["view-profile"]}}
        }))
        .unwrap()
        .token;
    let auth0_reader = issuer
        .issue(
            "auth0|64f1",
            &json!({"scope": "openid ads:read", "permissions": ["read:ads"]}),
        )
        .unwrap()
        .token;
    let nobody = issuer
        .issue(
            "x",
            &json!({"scope": "openid", "realm_access": ["advertiser"], "roles": "moderator"}),
        )
        .unwrap()
        .token;
    let http = reqwest::Client::new();
    let cases = [
        ("/ads", Some(&keycloak_moderator), 200),
        ("/ads", Some(&auth0_reader), 200),
        ("/ads", Some(&nobody), 403),
        ("/ads", None, 401),
        ("/moderation", Some(&keycloak_moderator), 200),
        ("/moderation", Some(&auth0_reader), 403),
        ("/moderation", Some(&nobody), 403),
        ("/moderation", None, 401),
    ];
    for (path, token, status) in cases {
        let mut request = http.get(format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{path} {}", token.is_some());
        if status == 403 {
            let challenge = response.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap();
            assert!(
                challenge.contains(r#"error="insufficient_scope""#),
                "{challenge}"
            );
        }
        if status == 200 {
            let body: Value = response.json().await.unwrap();
            assert!(
                body.as_object().unwrap().values().all(|v| v.is_string()),
                "{body}"
            );
        }
    }
}
