//! fixtures/nginx.conf is a real nginx config: `nginx -t` accepts it.
//! Skips without nginx unless BADGATEWAY_REQUIRE_NGINX=1.

#[test]
fn fixture_passes_real_nginx_t() {
    let bin = match harness::nginx::available() {
        Ok(b) => b,
        Err(why) => {
            assert!(std::env::var("BADGATEWAY_REQUIRE_NGINX").as_deref() != Ok("1"), "nginx required: {why}");
            eprintln!("SKIP nginx -t: {why}");
            return;
        }
    };
    let prefix = std::env::temp_dir().join(format!("nginx-t-{}", std::process::id()));
    std::fs::create_dir_all(&prefix).unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/nginx.conf");
    let out = std::process::Command::new(bin)
        .args(["-t", "-p"])
        .arg(format!("{}/", prefix.display()))
        .args(["-e", "error.log", "-c"])
        .arg(&fixture)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&prefix).ok();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "nginx -t rejected the fixture: {err}");
    assert!(err.contains("test is successful"), "{err}");
}
