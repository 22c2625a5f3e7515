//! Conformance checks: Node rows.

use super::*;

/// Nodes round-trip; heartbeats and state changes apply to the named node, on the
/// store's clock.
pub async fn nodes_round_trip<S: Store + ?Sized>(store: &S) {
    let before = store.now().await.expect("now").as_microsecond();
    let node = |id: &str, pid: i64, roles: &[&str], started: i64| NodeRow {
        node_id: id.to_owned(),
        host: format!("{id}.example"),
        pid,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        version: "0.1.0".into(),
        state: NodeState::Running,
        started_at: Timestamp::from_second(BASE_SECOND + started).expect("a valid timestamp"),
        // The store sets heartbeats on its own clock.
        heartbeat_at: Timestamp::UNIX_EPOCH,
        clock_skew_us: 0,
        running_attempts: 0,
        attempt_lease_ms: 0,
        queues: if roles.contains(&"worker") {
            vec!["default".into(), format!("{id}-queue")]
        } else {
            Vec::new()
        },
    };
    let n1 = node("n1", 100, &["scheduler", "worker"], 10);
    let n2 = node("n2", 200, &["worker"], 20);
    let n3 = node("n3", 300, &[], 30);
    for n in [&n1, &n2, &n3] {
        store.register_node(n).await.expect("register_node");
    }

    let listed = store.list_nodes().await.expect("list_nodes");
    assert_eq!(listed.len(), 3, "{listed:#?}");
    let get = |rows: &[NodeRow], id: &str| {
        rows.iter()
            .find(|n| n.node_id == id)
            .unwrap_or_else(|| panic!("node {id} missing from {rows:#?}"))
            .clone()
    };
    for want in [&n1, &n2, &n3] {
        let got = get(&listed, &want.node_id);
        assert_eq!(got.host, want.host);
        assert_eq!(got.queues, want.queues);
        assert_eq!(got.pid, want.pid);
        assert_eq!(got.roles, want.roles, "roles must round-trip");
        assert_eq!(got.version, want.version);
        assert_eq!(got.state, "running");
        assert_eq!(got.started_at, want.started_at);
        assert!(
            got.heartbeat_at.as_microsecond() >= before,
            "register_node sets heartbeat_at from the store's clock: {got:?}"
        );
    }
    let hb1 = get(&listed, "n1").heartbeat_at;
    let hb2 = get(&listed, "n2").heartbeat_at;

    tokio::time::sleep(Duration::from_millis(5)).await;
    store
        .heartbeat_node("n1", Timestamp::now())
        .await
        .expect("heartbeat_node");
    let listed = store.list_nodes().await.expect("list_nodes");
    assert!(
        get(&listed, "n1").heartbeat_at > hb1,
        "heartbeat_node must move heartbeat_at forward"
    );
    assert_eq!(
        get(&listed, "n2").heartbeat_at,
        hb2,
        "heartbeat_node touches only the named node"
    );

    store
        .set_node_state("n2", NodeState::Stopped)
        .await
        .expect("set_node_state");
    let listed = store.list_nodes().await.expect("list_nodes");
    assert_eq!(get(&listed, "n2").state, "stopped");
    assert_eq!(get(&listed, "n1").state, "running");

    store
        .heartbeat_node("ghost", Timestamp::now())
        .await
        .expect("heartbeat_node of an unknown node");
    store
        .set_node_state("ghost", NodeState::Stopped)
        .await
        .expect("set_node_state of an unknown node");
    assert_eq!(
        store.list_nodes().await.expect("list_nodes").len(),
        3,
        "heartbeats and state changes do not create nodes"
    );

    // A node registering again (a restart) replaces its row.
    let restarted = NodeRow {
        pid: 101,
        roles: vec!["worker".into()],
        queues: vec!["gpu".into()],
        version: "0.2.0".into(),
        ..n1.clone()
    };
    store
        .register_node(&restarted)
        .await
        .expect("register_node again");
    let listed = store.list_nodes().await.expect("list_nodes");
    assert_eq!(listed.len(), 3, "registering again must not add a row");
    let got = get(&listed, "n1");
    assert_eq!(got.pid, 101);
    assert_eq!(got.roles, vec!["worker".to_owned()]);
    assert_eq!(got.version, "0.2.0");
    assert_eq!(got.queues, vec!["gpu".to_owned()]);
}
