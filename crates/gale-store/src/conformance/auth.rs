//! Conformance checks: Users, sessions and API tokens.

use jiff::SignedDuration;

use super::*;

/// An idle time no check's session reaches.
const DAY: SignedDuration = SignedDuration::from_hours(24);

/// Users round-trip; a session or token is found by its hash until it expires,
/// is deleted or revoked, its user's password changes (sessions) or its user is
/// deleted.
pub async fn users_sessions_tokens<S: Store + ?Sized>(store: &S) {
    let hash_a = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaC1h";
    assert!(
        store
            .create_user("ann", Role::Admin, hash_a)
            .await
            .expect("create_user"),
        "creating a new user must return true"
    );
    assert!(
        !store
            .create_user("ann", Role::Viewer, "other")
            .await
            .expect("create_user"),
        "creating an existing user must return false"
    );
    assert!(
        store
            .create_user("bob", Role::Viewer, "hash-b")
            .await
            .expect("create_user")
    );
    let ann = store
        .get_user("ann")
        .await
        .expect("get_user")
        .expect("ann exists");
    assert_eq!(
        (
            ann.name.as_str(),
            ann.role.as_str(),
            ann.password_hash.as_str()
        ),
        ("ann", "admin", hash_a),
        "a user round-trips, and a second create_user changes nothing"
    );
    assert!(store.get_user("nobody").await.expect("get_user").is_none());
    let mut users: Vec<(String, String, String)> = store
        .list_users()
        .await
        .expect("list_users")
        .into_iter()
        .map(|u| (u.name, u.role.as_str().to_owned(), u.password_hash))
        .collect();
    users.sort();
    assert_eq!(
        users,
        vec![
            ("ann".to_owned(), "admin".to_owned(), hash_a.to_owned()),
            ("bob".to_owned(), "viewer".to_owned(), "hash-b".to_owned()),
        ]
    );

    // Sessions.
    let now = store.now().await.expect("now").as_second();
    let at = |s: i64| Timestamp::from_second(now + s).expect("a valid timestamp");
    store
        .create_session("sess-a", "ann", "csrf-a", at(3600))
        .await
        .expect("create_session");
    let s = store
        .get_session("sess-a", DAY)
        .await
        .expect("get_session")
        .expect("a live session is found by its hash");
    assert_eq!(
        (s.user.as_str(), s.role.as_str(), s.csrf_token.as_str()),
        ("ann", "admin", "csrf-a")
    );
    assert_eq!(s.expires_at, at(3600));
    store
        .create_session("sess-old", "ann", "csrf-o", at(-60))
        .await
        .expect("create_session");
    assert!(
        store
            .get_session("sess-old", DAY)
            .await
            .expect("get_session")
            .is_none(),
        "an expired session is not returned"
    );
    assert!(
        store
            .get_session("sess-nope", DAY)
            .await
            .expect("get_session")
            .is_none()
    );
    store
        .delete_session("sess-a")
        .await
        .expect("delete_session");
    assert!(
        store
            .get_session("sess-a", DAY)
            .await
            .expect("get_session")
            .is_none(),
        "a deleted session is gone"
    );
    store
        .delete_session("sess-a")
        .await
        .expect("deleting a missing session is not an error");

    // A new password ends the user's sessions, not other users'.
    store
        .create_session("sess-b", "ann", "csrf-b", at(3600))
        .await
        .expect("create_session");
    store
        .create_session("sess-bob", "bob", "csrf-bob", at(3600))
        .await
        .expect("create_session");
    assert!(
        store
            .set_password("ann", "hash-a2")
            .await
            .expect("set_password")
    );
    assert_eq!(
        store
            .get_user("ann")
            .await
            .expect("get_user")
            .unwrap()
            .password_hash,
        "hash-a2"
    );
    assert!(
        store
            .get_session("sess-b", DAY)
            .await
            .expect("get_session")
            .is_none(),
        "set_password ends the user's sessions"
    );
    assert_eq!(
        store
            .get_session("sess-bob", DAY)
            .await
            .expect("get_session")
            .expect("another user's session is kept")
            .role,
        Role::Viewer
    );
    assert!(
        !store
            .set_password("nobody", "x")
            .await
            .expect("set_password"),
        "set_password of a missing user must return false"
    );

    // API tokens.
    store
        .create_token("ci", "nobody", "sec-x", None)
        .await
        .expect_err("a token for a missing user must be refused");
    let ci = store
        .create_token("ci", "ann", "sec-1", None)
        .await
        .expect("create_token");
    let laptop = store
        .create_token("laptop", "ann", "sec-2", Some(at(86_400)))
        .await
        .expect("create_token");
    let bot = store
        .create_token("bot", "bob", "sec-3", None)
        .await
        .expect("create_token");
    let old = store
        .create_token("old", "bob", "sec-4", Some(at(-60)))
        .await
        .expect("create_token");
    assert_eq!(
        BTreeSet::from([ci, laptop, bot, old]).len(),
        4,
        "token ids are unique"
    );
    let t = store
        .get_token("sec-1")
        .await
        .expect("get_token")
        .expect("a live token is found by its hash");
    assert_eq!(
        (t.id, t.name.as_str(), t.user.as_str(), t.role.as_str()),
        (ci, "ci", "ann", "admin")
    );
    assert_eq!(t.expires_at, None);
    let t = store
        .get_token("sec-2")
        .await
        .expect("get_token")
        .expect("a token that expires tomorrow is live");
    assert_eq!((t.id, t.expires_at), (laptop, Some(at(86_400))));
    assert_eq!(
        store
            .get_token("sec-3")
            .await
            .expect("get_token")
            .expect("bob's token")
            .role,
        Role::Viewer,
        "a token carries its user's role"
    );
    assert!(
        store.get_token("sec-4").await.expect("get_token").is_none(),
        "an expired token is not returned"
    );
    assert!(
        store
            .get_token("sec-nope")
            .await
            .expect("get_token")
            .is_none()
    );
    let token_ids = async |user: Option<&str>| -> BTreeSet<i64> {
        store
            .list_tokens(user)
            .await
            .expect("list_tokens")
            .iter()
            .map(|t| t.id)
            .collect()
    };
    assert_eq!(
        token_ids(Some("ann")).await,
        BTreeSet::from([ci, laptop]),
        "list_tokens of a user lists only theirs"
    );
    let everyone = token_ids(None).await;
    assert!(
        everyone.is_superset(&BTreeSet::from([ci, laptop, bot]))
            && everyone.is_subset(&BTreeSet::from([ci, laptop, bot, old])),
        "list_tokens(None) lists every user's tokens: {everyone:?}"
    );
    assert!(store.revoke_token(ci).await.expect("revoke_token"));
    assert!(
        !store.revoke_token(ci).await.expect("revoke_token"),
        "revoking a revoked token must return false"
    );
    assert!(
        store.get_token("sec-1").await.expect("get_token").is_none(),
        "a revoked token is not returned"
    );
    assert_eq!(token_ids(Some("ann")).await, BTreeSet::from([laptop]));

    // Deleting a user deletes their sessions and tokens, and nobody else's.
    store
        .create_session("sess-c", "ann", "csrf-c", at(3600))
        .await
        .expect("create_session");
    assert!(store.delete_user("ann").await.expect("delete_user"));
    assert!(store.get_user("ann").await.expect("get_user").is_none());
    assert!(
        store
            .get_session("sess-c", DAY)
            .await
            .expect("get_session")
            .is_none(),
        "a deleted user's sessions are gone"
    );
    assert!(
        store.get_token("sec-2").await.expect("get_token").is_none(),
        "a deleted user's tokens are gone"
    );
    assert!(token_ids(Some("ann")).await.is_empty());
    assert!(
        !token_ids(None).await.contains(&laptop),
        "a deleted user's tokens are not listed"
    );
    assert!(
        !store.delete_user("ann").await.expect("delete_user"),
        "deleting a missing user must return false"
    );
    assert!(
        store.get_token("sec-3").await.expect("get_token").is_some(),
        "other users' tokens are kept"
    );
    assert!(
        store
            .get_session("sess-bob", DAY)
            .await
            .expect("get_session")
            .is_some(),
        "other users' sessions are kept"
    );
    assert_eq!(
        store
            .list_users()
            .await
            .expect("list_users")
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>(),
        vec!["bob"]
    );
}

/// A session ends once unused for the idle time its reader asks for, and use
/// refreshes it; a new password revokes the user's API tokens (not others').
pub async fn sessions_idle_and_tokens_revoked<S: Store + ?Sized>(store: &S) {
    assert!(
        store
            .create_user("cy", Role::Operator, "h")
            .await
            .expect("create_user")
    );
    assert!(
        store
            .create_user("di", Role::Viewer, "h")
            .await
            .expect("create_user")
    );
    let now = store.now().await.expect("now");
    let later = now
        .checked_add(SignedDuration::from_hours(1))
        .expect("a valid timestamp");
    store
        .create_session("sess-idle", "cy", "csrf", later)
        .await
        .expect("create_session");
    let first = store
        .get_session("sess-idle", DAY)
        .await
        .expect("get_session")
        .expect("a session just made is live");
    assert!(
        first.last_used_at >= now.checked_sub(SignedDuration::from_secs(5)).expect("ts"),
        "a new session was last used when it was made: {} vs {now}",
        first.last_used_at
    );
    assert!(
        store
            .get_session("sess-idle", SignedDuration::ZERO)
            .await
            .expect("get_session")
            .is_none(),
        "a session unused for longer than the idle time is not returned"
    );
    // A hundredth of 30 s is 300 ms: a use 400 ms later is written.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let used = store
        .get_session("sess-idle", SignedDuration::from_secs(30))
        .await
        .expect("get_session")
        .expect("a session used within its idle time is live");
    assert!(
        used.last_used_at > first.last_used_at,
        "using a session refreshes its last use: {} then {}",
        first.last_used_at,
        used.last_used_at
    );
    let again = store
        .get_session("sess-idle", DAY)
        .await
        .expect("get_session")
        .expect("still live");
    assert_eq!(
        again.last_used_at, used.last_used_at,
        "the refresh was stored (and a use within a hundredth of the idle time writes nothing)"
    );

    let mine = store
        .create_token("ci", "cy", "sec-cy", Some(later))
        .await
        .expect("create_token");
    store
        .create_token("ci", "di", "sec-di", Some(later))
        .await
        .expect("create_token");
    assert_eq!(
        store
            .get_token("sec-cy")
            .await
            .expect("get_token")
            .map(|t| t.id),
        Some(mine)
    );
    assert!(store.set_password("cy", "h2").await.expect("set_password"));
    assert!(
        store
            .get_token("sec-cy")
            .await
            .expect("get_token")
            .is_none(),
        "a new password revokes the user's tokens"
    );
    assert!(
        store
            .list_tokens(Some("cy"))
            .await
            .expect("list_tokens")
            .is_empty(),
        "a revoked token is not listed"
    );
    assert!(
        store
            .get_token("sec-di")
            .await
            .expect("get_token")
            .is_some(),
        "another user's token is kept"
    );
    assert!(
        store
            .get_session("sess-idle", DAY)
            .await
            .expect("get_session")
            .is_none(),
        "a new password ends the user's sessions"
    );
}
