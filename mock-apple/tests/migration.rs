//! An app's transfer to another team (`teams`), through siwa-core's Apple client: team-scoped
//! `sub` and relay addresses, `transfer_sub` in tokens for 60 days, and both directions of
//! `/auth/usermigrationinfo` with a `client_credentials` token of scope `user.migration`.

mod common;

use std::time::Duration;

use common::*;
use mock_apple::{Endpoint, Fault, IdentityTokenRequest, MockApple};
use siwa_core::{
    AppleApiError, AppleClient, ClientSecret, DeveloperKey, MigratedUser, OAuthErrorCode,
    TransferIdentifier, UserMigrationRequest,
};

const SENDER: &str = "TEAMAAAAAA";
const RECIPIENT: &str = "TEAMBBBBBB";
const DAY: i64 = 86_400;

struct Team {
    key: DeveloperKey,
}

impl Team {
    fn new(apple: &MockApple, team: &str, key_id: &str) -> Self {
        let generated = apple
            .generate_developer_key(Some(team), Some(key_id))
            .unwrap();
        let key = DeveloperKey::from_p8_pem(team, key_id, &generated.private_key_pem).unwrap();
        Self { key }
    }

    fn secret(&self, apple: &MockApple) -> ClientSecret {
        self.key
            .mint(APP, apple.now(), Duration::from_secs(300))
            .unwrap()
    }

    async fn token(
        &self,
        apple: &MockApple,
        client: &AppleClient,
    ) -> Result<String, AppleApiError> {
        let answer = client.migration_token(APP, &self.secret(apple)).await?;
        assert_eq!(answer.token_type, "Bearer");
        assert_eq!(answer.expires_in, 3600);
        Ok(answer.access_token)
    }

    async fn transfer_sub(
        &self,
        apple: &MockApple,
        client: &AppleClient,
        sub: &str,
    ) -> Result<String, AppleApiError> {
        let token = self.token(apple, client).await?;
        let request = UserMigrationRequest {
            client_id: Some(APP.into()),
            client_secret: Some(self.secret(apple).expose().into()),
            sub: Some(sub.into()),
            target: Some(RECIPIENT.into()),
            ..Default::default()
        };
        let answer: TransferIdentifier = client.user_migration_info(&token, &request).await?;
        Ok(answer.transfer_sub)
    }

    async fn exchange(
        &self,
        apple: &MockApple,
        client: &AppleClient,
        transfer_sub: &str,
    ) -> Result<MigratedUser, AppleApiError> {
        let token = self.token(apple, client).await?;
        let request = UserMigrationRequest {
            client_id: Some(APP.into()),
            client_secret: Some(self.secret(apple).expose().into()),
            transfer_sub: Some(transfer_sub.into()),
            ..Default::default()
        };
        client.user_migration_info(&token, &request).await
    }
}

fn rejected(result: Result<impl Sized, AppleApiError>) -> OAuthErrorCode {
    match result {
        Err(AppleApiError::Rejected(error)) => error.error,
        Err(other) => panic!("not a rejection: {other}"),
        Ok(_) => panic!("accepted"),
    }
}

struct Setup {
    apple: MockApple,
    client: AppleClient,
    sender: Team,
    recipient: Team,
}

async fn setup() -> Setup {
    let apple = apple().await;
    let sender = Team::new(&apple, SENDER, "KEYAAAAAAA");
    let recipient = Team::new(&apple, RECIPIENT, "KEYBBBBBBB");
    apple.assign_client_team(APP, SENDER).unwrap();
    let client = AppleClient::new(apple.endpoints(), Duration::from_secs(5)).unwrap();
    Setup {
        apple,
        client,
        sender,
        recipient,
    }
}

fn mint(apple: &MockApple, sub: &str, hide_email: bool) -> serde_json::Value {
    let minted = apple
        .mint_identity_token(IdentityTokenRequest {
            sub: Some(sub.into()),
            hide_email,
            ..Default::default()
        })
        .unwrap();
    let payload = minted.identity_token.split('.').nth(1).unwrap().to_owned();
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_transfer_prepared_before_and_exchanged_after_relinks_every_user() {
    let s = setup().await;
    let users: Vec<_> = (0..3)
        .map(|i| {
            s.apple
                .add_user(mock_apple::NewUser {
                    relay_domain: (i == 2).then(|| "private.icloud.com".into()),
                    ..Default::default()
                })
                .unwrap()
        })
        .collect();
    // Before: each user's sub is the directory's; user 1 and 2 hide their email.
    let before: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, u)| mint(&s.apple, &u.sub, i > 0))
        .collect();
    let mut prepared = Vec::new();
    for (user, claims) in users.iter().zip(&before) {
        assert_eq!(claims["sub"], user.sub.as_str());
        assert!(claims.get("transfer_sub").is_none());
        let transfer_sub = s
            .sender
            .transfer_sub(&s.apple, &s.client, claims["sub"].as_str().unwrap())
            .await
            .unwrap();
        assert_ne!(transfer_sub, user.sub);
        prepared.push(transfer_sub);
    }
    // The recipient cannot exchange before the app is theirs.
    assert_eq!(
        rejected(
            s.recipient
                .exchange(&s.apple, &s.client, &prepared[0])
                .await
        ),
        OAuthErrorCode::InvalidClient
    );

    s.apple.transfer_client(APP, RECIPIENT).unwrap();
    for (i, (user, transfer_sub)) in users.iter().zip(&prepared).enumerate() {
        let after = mint(&s.apple, &user.sub, i > 0);
        assert_ne!(
            after["sub"], before[i]["sub"],
            "a new sub under the new team"
        );
        assert_eq!(after["transfer_sub"], transfer_sub.as_str());
        let migrated = s
            .recipient
            .exchange(&s.apple, &s.client, transfer_sub)
            .await
            .unwrap();
        assert_eq!(migrated.sub, after["sub"].as_str().unwrap());
        assert_eq!(migrated.email.as_deref(), after["email"].as_str());
        assert_eq!(migrated.is_private_email, Some(i > 0));
        if i > 0 {
            assert_ne!(after["email"], before[i]["email"], "a new relay address");
        }
    }
    let email = |i: usize| {
        mint(&s.apple, &users[i].sub, true)["email"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(email(1).ends_with("@privaterelay.appleid.com"));
    assert!(email(2).ends_with("@private.icloud.com"));
    // The sending team may still prepare during the window.
    let late = s.apple.add_user(mock_apple::NewUser::default()).unwrap();
    s.sender
        .transfer_sub(&s.apple, &s.client, &late.sub)
        .await
        .unwrap();
    // Three prepared, three exchanged, one late (the refused exchange never got a token).
    assert_eq!(s.apple.request_count(Endpoint::UserMigrationInfo), 7);
}

#[tokio::test]
async fn after_sixty_days_tokens_lose_transfer_sub_and_the_endpoint_refuses() {
    let s = setup().await;
    let user = s.apple.add_user(mock_apple::NewUser::default()).unwrap();
    let transfer_sub = s
        .sender
        .transfer_sub(&s.apple, &s.client, &user.sub)
        .await
        .unwrap();
    s.apple.transfer_client(APP, RECIPIENT).unwrap();
    s.apple.advance_clock(60 * DAY - 60);
    assert!(
        mint(&s.apple, &user.sub, false)
            .get("transfer_sub")
            .is_some()
    );
    s.apple.advance_clock(60);
    assert!(
        mint(&s.apple, &user.sub, false)
            .get("transfer_sub")
            .is_none()
    );
    assert_eq!(
        rejected(
            s.recipient
                .exchange(&s.apple, &s.client, &transfer_sub)
                .await
        ),
        OAuthErrorCode::InvalidGrant
    );
    assert_eq!(
        rejected(s.sender.token(&s.apple, &s.client).await),
        OAuthErrorCode::InvalidGrant
    );
}

#[tokio::test]
async fn wrong_teams_clients_and_identifiers_are_refused_as_apple_does() {
    let s = setup().await;
    let user = s.apple.add_user(mock_apple::NewUser::default()).unwrap();
    // A third team's key: not the client's team.
    let stranger = Team::new(&s.apple, "TEAMCCCCCC", "KEYCCCCCCC");
    assert_eq!(
        rejected(stranger.token(&s.apple, &s.client).await),
        OAuthErrorCode::InvalidClient
    );
    // Unknown sub, own team as target, an unknown transfer identifier.
    assert_eq!(
        rejected(
            s.sender
                .transfer_sub(&s.apple, &s.client, "000000.nobody.0000")
                .await
        ),
        OAuthErrorCode::InvalidRequest
    );
    let token = s.sender.token(&s.apple, &s.client).await.unwrap();
    let to_self = UserMigrationRequest {
        client_id: Some(APP.into()),
        client_secret: Some(s.sender.secret(&s.apple).expose().into()),
        sub: Some(user.sub.clone()),
        target: Some(SENDER.into()),
        ..Default::default()
    };
    assert_eq!(
        rejected(
            s.client
                .user_migration_info::<TransferIdentifier>(&token, &to_self)
                .await
        ),
        OAuthErrorCode::InvalidRequest
    );
    // Another team's access token with this team's secret, and no token at all.
    s.apple.transfer_client(APP, RECIPIENT).unwrap();
    let recipients = s.recipient.token(&s.apple, &s.client).await.unwrap();
    let with_senders_secret = UserMigrationRequest {
        client_id: Some(APP.into()),
        client_secret: Some(s.sender.secret(&s.apple).expose().into()),
        sub: Some(user.sub.clone()),
        target: Some(RECIPIENT.into()),
        ..Default::default()
    };
    assert_eq!(
        rejected(
            s.client
                .user_migration_info::<TransferIdentifier>(&recipients, &with_senders_secret)
                .await
        ),
        OAuthErrorCode::InvalidClient
    );
    assert_eq!(
        rejected(
            s.client
                .user_migration_info::<TransferIdentifier>("not-a-token", &with_senders_secret)
                .await
        ),
        OAuthErrorCode::InvalidClient
    );
    assert_eq!(
        rejected(
            s.recipient
                .exchange(&s.apple, &s.client, "000000.unknown.0000")
                .await
        ),
        OAuthErrorCode::InvalidRequest
    );
    // Rate limiting, as an injected fault: a 429 is "unavailable" (retry later).
    s.apple.set_fault(
        Endpoint::UserMigrationInfo,
        Fault {
            status: Some(429),
            count: Some(1),
            ..Default::default()
        },
    );
    let limited = s.sender.transfer_sub(&s.apple, &s.client, &user.sub).await;
    assert!(
        matches!(limited, Err(AppleApiError::Unavailable(_))),
        "{limited:?}"
    );
    s.sender
        .transfer_sub(&s.apple, &s.client, &user.sub)
        .await
        .unwrap();
}
