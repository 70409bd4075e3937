//! The nginx.conf reader never panics, and what it renders it reads back.

use proptest::prelude::*;
use nginx_model::conf::{self, Config, Location, ProxyDirectives, Server, Upstream, UpstreamServer};
use nginx_model::retry::Ft;
use std::time::Duration;

proptest! {
    #[test]
    fn arbitrary_text_gives_a_result_not_a_panic(src in "[a-z_{};'\" \\n#0-9.:/$=-]{0,200}") {
        let _ = conf::parse(&src, "fuzz.conf");
    }

    #[test]
    fn directive_soup_errors_name_a_line(lines in prop::collection::vec(
        prop_oneof![
            Just("keepalive 16;"), Just("proxy_pass http://u;"), Just("server 127.0.0.1:1;"),
            Just("location / {"), Just("}"), Just("bogus x;"), Just("proxy_read_timeout 5x;"), Just("upstream u {"),
        ], 0..12)) {
        let src = format!("events {{}}\nhttp {{\n{}\n}}\n", lines.join("\n"));
        if let Err(e) = conf::parse(&src, "t.conf") {
            prop_assert!(e.line >= 1 && e.line <= lines.len() + 4, "{e}");
            prop_assert!(e.to_string().contains(" in t.conf:"), "{e}");
        }
    }

    #[test]
    fn render_then_parse_is_identity(
        keepalive in prop::option::of(1u32..64),
        kt_ms in prop::option::of(1u64..100_000),
        servers in 1usize..4,
        mask in prop_oneof![Just(None), Just(Some(Ft::OFF)), Just(Some(Ft::DEFAULT_MASK)), Just(Some(Ft(0x2 | 0x4 | 0x4000)))],
        tries in prop::option::of(0u32..5),
        read_ms in prop::option::of(1u64..100_000),
        clear in any::<bool>(),
    ) {
        let cfg = Config {
            upstreams: vec![Upstream {
                name: "up".into(),
                servers: (0..servers).map(|i| UpstreamServer { weight: 1 + i as u32, ..UpstreamServer::new(format!("127.0.0.1:{}", 9000 + i)) }).collect(),
                keepalive,
                keepalive_timeout: kt_ms.map(Duration::from_millis),
                keepalive_requests: None,
                keepalive_time: None,
                least_conn: false,
                verbatim: None,
                pos: Default::default(),
            }],
            servers: vec![Server {
                listen: vec!["127.0.0.1:8080".into()],
                locations: vec![Location {
                    access_log: Vec::new(),
                    modifier: String::new(),
                    path: "/".into(),
                    proxy: ProxyDirectives {
                        pass: Some("http://up".into()),
                        http_version: Some("1.1".into()),
                        set_header: clear.then(|| vec![("Connection".to_string(), String::new())]),
                        next_upstream: mask,
                        next_upstream_tries: tries,
                        read_timeout: read_ms.map(Duration::from_millis),
                        ..ProxyDirectives::default()
                    },
                    verbatim: None,
                    ret: None,
                    pos: Default::default(),
                }],
                ..Server::default()
            }],
            // render() always names proxy_temp_path (the built-in default
            // when none is set), so the parsed config has it.
            proxy: ProxyDirectives { temp_path: Some(("proxy_temp".into(), [1, 2, 0])), ..ProxyDirectives::default() },
            ..Config::default()
        };
        let back = conf::parse(&cfg.render(), "rendered").unwrap();
        prop_assert_eq!(back, cfg);
    }
}
