//! Attacks on revert-ingress.

// ---------------------------------------------------------------------------------------
// Issue 21, attack 2: widen an allowed prefix list. With `tcp/22 from pl-X` allowed, one
// `ModifyManagedPrefixList pl-X add 0.0.0.0/0` opens ssh to the internet without a single
// security-group call. The rule on the list must go within its event, or at the next sweep.

mod prefix_list {
    use std::path::PathBuf;

    use aws_sdk_dynamodb::types::AttributeValue;
    use aws_sdk_ec2::types::{AddPrefixListEntry, RemovePrefixListEntry};
    use aws_sdk_ec2::Client;
    use serde_json::{json, Value};
    use sgwarden_tests::cloudtrail::{self, api_call, session, user};
    use sgwarden_tests::runtime::{self, binary_path, Outcome};
    use sgwarden_tests::{world, Emulator};

    const REGION: &str = "us-east-1";
    const APPROVALS: &str = "sgwarden-approvals";
    const ADMIN_ROLE: &str = "arn:aws:iam::123456789012:role/ops/NetworkAdmin";
    const PARTNER: &str = "203.0.113.0/24";

    /// A protected group whose ssh is allowed from a customer-managed list of partners,
    /// holding one rule on the list; the approvals table; the exempt NetworkAdmin role.
    struct ListWorld {
        emulator: Emulator,
        ec2: Client,
        dynamodb: aws_sdk_dynamodb::Client,
        group: String,
        list: String,
    }

    impl ListWorld {
        async fn new() -> Self {
            let emulator = Emulator::start();
            let config = emulator.sdk_config(REGION).await;
            let ec2 = Client::new(&config);
            let dynamodb = aws_sdk_dynamodb::Client::new(&config);
            world::approvals_table(&dynamodb, APPROVALS).await;
            let vpc = world::vpc(&ec2, "10.9.0.0/16").await;
            let group = world::group(&ec2, &vpc, "bastion", &[("Protected", "true")]).await;
            let list = ec2
                .create_managed_prefix_list()
                .prefix_list_name("partners")
                .address_family("IPv4")
                .max_entries(5)
                .entries(AddPrefixListEntry::builder().cidr(PARTNER).build())
                .send()
                .await
                .unwrap()
                .prefix_list()
                .unwrap()
                .prefix_list_id()
                .unwrap()
                .to_string();
            ec2.authorize_security_group_ingress()
                .group_id(&group)
                .ip_permissions(
                    aws_sdk_ec2::types::IpPermission::builder()
                        .ip_protocol("tcp")
                        .from_port(22)
                        .to_port(22)
                        .prefix_list_ids(
                            aws_sdk_ec2::types::PrefixListId::builder()
                                .prefix_list_id(&list)
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
                .unwrap();
            Self {
                emulator,
                ec2,
                dynamodb,
                group,
                list,
            }
        }

        fn ssh(&self) -> String {
            format!("ingress tcp/22 {}", self.list)
        }

        fn env(&self) -> Vec<(&'static str, String)> {
            let policy = json!({
                "scope": {"tag": {"key": "Protected", "value": "true"}},
                "exempt": {"principals": [ADMIN_ROLE]},
                "allow": [{"protocol": "tcp", "ports": "22", "sources": [self.list]}],
                "directions": ["ingress"]
            });
            let mut env = self.emulator.function_env(REGION);
            env.push(("REVERT_POLICY", policy.to_string()));
            env.push(("REVERT_APPROVALS_TABLE", APPROVALS.to_string()));
            env.push((
                "SGWARDEN_FUNCTION_ROLE_ARN",
                "arn:aws:iam::123456789012:role/sgwarden-revert-ingress".to_string(),
            ));
            env
        }

        /// Serves `events` to the real revert-ingress binary; every one must be answered.
        async fn serve(&self, events: Vec<Value>) -> Vec<Value> {
            runtime::serve_events("revert-ingress", &self.env(), events)
                .await
                .into_iter()
                .map(|outcome| match outcome {
                    Outcome::Response { body, .. } => body,
                    other => panic!("expected a response: {other:?}"),
                })
                .collect()
        }

        /// The first sweep: nothing to revoke (the list's entries are vouched for on first use).
        async fn first_sweep(&self) {
            let report = &self.serve(vec![world::scheduled_event(REGION)]).await[0];
            assert_eq!(report["groups"][0]["revoked"], json!([]), "{report}");
        }

        /// Adds (or removes) `cidr` to the list by hand as `identity`; returns the event
        /// CloudTrail records for it.
        async fn modify_list(
            &self,
            identity: Value,
            add: Option<&str>,
            remove: Option<&str>,
        ) -> Value {
            let mut request = self
                .ec2
                .modify_managed_prefix_list()
                .prefix_list_id(&self.list);
            let mut parameters = serde_json::Map::new();
            parameters.insert("PrefixListId".into(), json!(self.list));
            if let Some(cidr) = add {
                request = request.add_entries(AddPrefixListEntry::builder().cidr(cidr).build());
                parameters.insert("AddEntry".into(), json!({"Cidr": cidr, "tag": 1}));
            }
            if let Some(cidr) = remove {
                request =
                    request.remove_entries(RemovePrefixListEntry::builder().cidr(cidr).build());
                parameters.insert("RemoveEntry".into(), json!({"Cidr": cidr, "tag": 1}));
            }
            request.send().await.unwrap();
            self.emulator.clear_calls();
            api_call(
                REGION,
                "ModifyManagedPrefixList",
                identity,
                json!({"ModifyManagedPrefixListRequest": parameters}),
                json!({"ModifyManagedPrefixListResponse": {"prefixList": {"prefixListId": self.list}}}),
            )
        }

        /// The group's ingress rules, read back from EC2.
        async fn rules(&self) -> Vec<String> {
            cloudtrail::rules(&self.ec2, &self.group)
                .await
                .iter()
                .filter(|r| r["isEgress"] == json!(false))
                .map(|r| {
                    let peer = r["prefixListId"]
                        .as_str()
                        .or(r["cidrIpv4"].as_str())
                        .unwrap_or_default();
                    format!("ingress tcp/{} {peer}", r["fromPort"])
                })
                .collect()
        }

        /// The entries the approvals table vouches for in the list.
        async fn vouched(&self) -> Vec<String> {
            let item = self
                .dynamodb
                .get_item()
                .table_name(APPROVALS)
                .key("group_id", AttributeValue::S(self.list.clone()))
                .key("approval_id", AttributeValue::S("entries".into()))
                .send()
                .await
                .unwrap()
                .item()
                .cloned()
                .unwrap_or_default();
            assert!(item.is_empty() || item["kind"] == AttributeValue::S("prefix-list".into()));
            item.get("entries")
                .and_then(|e| e.as_l().ok())
                .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
                .unwrap_or_default()
        }

        fn revokes(&self) -> usize {
            self.emulator.calls_of("RevokeSecurityGroupIngress").len()
        }
    }

    #[tokio::test]
    async fn widening_an_allowed_prefix_list_is_reverted_within_its_event() {
        let w = ListWorld::new().await;
        w.first_sweep().await;
        let event = w
            .modify_list(user("mallory"), Some("0.0.0.0/0"), None)
            .await;
        assert_eq!(w.rules().await, vec![w.ssh()]);
        // On first use the list's entries were vouched for.
        assert_eq!(w.vouched().await, vec![PARTNER.to_string()]);
        let report = &w.serve(vec![event]).await[0];
        // Read back from EC2: the rule on the widened list is gone, revoked by its id.
        assert_eq!(w.rules().await, Vec::<String>::new(), "{report}");
        assert_eq!(report["groups"][0]["revoked"], json!([w.ssh()]), "{report}");
        let why = report["groups"][0]["by_list"][0]["reason"]
            .as_str()
            .unwrap();
        assert!(why.contains(&w.list) && why.contains("0.0.0.0/0"), "{why}");
        let revoke = &w.emulator.calls_of("RevokeSecurityGroupIngress")[0];
        assert!(revoke.params.to_string().contains("sgr-"), "{revoke:?}");
        // The widening is not vouched for by its own event.
        assert_eq!(w.vouched().await, vec![PARTNER.to_string()]);
    }

    #[tokio::test]
    async fn widening_an_allowed_prefix_list_unseen_is_reverted_by_the_next_sweep() {
        let w = ListWorld::new().await;
        w.first_sweep().await;
        // The event is lost: only the sweep can see the list now holds the internet.
        w.modify_list(user("mallory"), Some("0.0.0.0/0"), None)
            .await;
        let report = &w.serve(vec![world::scheduled_event(REGION)]).await[0];
        assert_eq!(w.rules().await, Vec::<String>::new(), "{report}");
        assert_eq!(report["groups"][0]["revoked"], json!([w.ssh()]), "{report}");
        assert_eq!(w.revokes(), 1);
    }

    #[tokio::test]
    async fn an_exempt_principal_s_widening_is_vouched_for_and_kept() {
        let w = ListWorld::new().await;
        w.first_sweep().await;
        let event = w
            .modify_list(
                session("ops/", "NetworkAdmin", "bob"),
                Some("198.51.100.0/24"),
                None,
            )
            .await;
        let reports = w.serve(vec![event, world::scheduled_event(REGION)]).await;
        assert_eq!(w.rules().await, vec![w.ssh()], "{reports:?}");
        assert_eq!(w.revokes(), 0);
        assert_eq!(
            w.vouched().await,
            vec!["198.51.100.0/24".to_string(), PARTNER.to_string()]
        );
    }

    #[tokio::test]
    async fn a_list_holding_only_vouched_entries_keeps_its_rule() {
        let w = ListWorld::new().await;
        w.first_sweep().await;
        let again = &w.serve(vec![world::scheduled_event(REGION)]).await[0];
        assert_eq!(
            again["groups"][0]["kept"][0]["rule"],
            json!(w.ssh()),
            "{again}"
        );
        // Narrowing, by anyone, is no widening: the rule stays, and the entry that left is
        // no longer vouched for, so adding it back later is judged afresh.
        let removed = w.modify_list(user("mallory"), None, Some(PARTNER)).await;
        let report = &w.serve(vec![removed]).await[0];
        assert_eq!(w.rules().await, vec![w.ssh()], "{report}");
        assert_eq!(w.revokes(), 0);
        assert_eq!(w.vouched().await, Vec::<String>::new());
    }

    #[tokio::test]
    async fn approving_ssh_from_a_prefix_list_that_holds_the_internet_is_refused() {
        let w = ListWorld::new().await;
        w.modify_list(user("mallory"), Some("0.0.0.0/0"), None)
            .await;
        let approve = |extra: &'static [&'static str]| {
            let mut args = vec![
                "approve".to_string(),
                "--group-id".into(),
                w.group.clone(),
                "--rule".into(),
                format!("tcp/22 {}", w.list),
                "--for".into(),
                "4h".into(),
                "--reason".into(),
                "partner access".into(),
            ];
            args.extend(extra.iter().map(|a| a.to_string()));
            run_sgwarden(&w.emulator, args)
        };
        let refused = approve(&[]).await;
        assert_eq!(refused.0, Some(1), "{refused:?}");
        assert!(refused.2.contains("ApprovalRefused"), "{refused:?}");
        assert!(refused.2.contains("0.0.0.0/0"), "{refused:?}");
        assert!(w.emulator.calls_of("PutItem").is_empty());
        let asked = approve(&["--allow-anywhere"]).await;
        assert_eq!(asked.0, Some(0), "{asked:?}");
    }

    /// Runs the real `sgwarden` binary with the emulator's environment and the approvals
    /// table; returns its exit code, stdout and stderr.
    async fn run_sgwarden(emulator: &Emulator, args: Vec<String>) -> (Option<i32>, String, String) {
        let binary: PathBuf = binary_path("sgwarden");
        let out = tokio::process::Command::new(binary)
            .args(&args)
            .env_clear()
            .envs(emulator.function_env(REGION))
            .env("REVERT_APPROVALS_TABLE", APPROVALS)
            .output()
            .await
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}
