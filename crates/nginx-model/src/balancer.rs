//! nginx's round-robin balancer (`ngx_http_upstream_round_robin.c`), the
//! parts that decide 502s: smooth weighted selection, the per-request
//! `tried` set, `max_fails`/`fail_timeout`, `down`, backups, and the
//! single-server special case (never disabled; any release ends tries).

use std::time::{Duration, Instant};

/// One `server` of an upstream block. `A` is its address: a socket address
/// in the proxy, anything that names the server in the oracle.
#[derive(Debug, Clone)]
pub struct Peer<A> {
    pub addr: A,
    pub weight: i64,
    pub max_fails: u32,
    pub fail_timeout: Duration,
    pub down: bool,
    current_weight: i64,
    effective_weight: i64,
    fails: u32,
    accessed: Option<Instant>,
    checked: Option<Instant>,
}

impl<A> Peer<A> {
    pub fn new(addr: A, weight: u32, max_fails: u32, fail_timeout: Duration, down: bool) -> Peer<A> {
        Peer {
            addr,
            weight: weight as i64,
            max_fails,
            fail_timeout,
            down,
            current_weight: 0,
            effective_weight: weight as i64,
            fails: 0,
            accessed: None,
            checked: None,
        }
    }
}

/// Primary servers, or the `backup` ones (tried once every primary failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    Primary,
    Backup,
}

/// A peer of one upstream: its tier and position in the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerId {
    pub tier: Tier,
    pub index: usize,
}

impl PeerId {
    pub const fn primary(index: usize) -> PeerId {
        PeerId { tier: Tier::Primary, index }
    }
    pub const fn backup(index: usize) -> PeerId {
        PeerId { tier: Tier::Backup, index }
    }
}

#[derive(Debug, Clone)]
pub struct RoundRobin<A> {
    pub primary: Vec<Peer<A>>,
    pub backup: Vec<Peer<A>>,
}

/// The per-request `rrp->tried` bitmap.
#[derive(Debug, Clone, Default)]
pub struct Tried(Vec<PeerId>);

impl<A> RoundRobin<A> {
    pub fn new(primary: Vec<Peer<A>>, backup: Vec<Peer<A>>) -> Self {
        RoundRobin { primary, backup }
    }

    /// `peers->single`: one primary address (down ones count) and no backup.
    pub fn single(&self) -> bool {
        self.primary.len() == 1 && self.backup.is_empty()
    }

    /// `ngx_http_upstream_tries`: non-down primaries plus non-down backups.
    pub fn tries(&self) -> u32 {
        (self.primary.iter().filter(|p| !p.down).count() + self.backup.iter().filter(|p| !p.down).count()) as u32
    }

    pub fn peer(&self, id: PeerId) -> &Peer<A> {
        match id.tier {
            Tier::Primary => &self.primary[id.index],
            Tier::Backup => &self.backup[id.index],
        }
    }

    fn peer_mut(&mut self, id: PeerId) -> &mut Peer<A> {
        match id.tier {
            Tier::Primary => &mut self.primary[id.index],
            Tier::Backup => &mut self.backup[id.index],
        }
    }

    /// `ngx_http_upstream_get_round_robin_peer`. `None` = NGX_BUSY, which the
    /// caller reports as "no live upstreams".
    pub fn get_peer(&mut self, tried: &mut Tried, now: Instant) -> Option<PeerId> {
        if self.single() {
            let p = &self.primary[0];
            return (!p.down).then_some(PeerId::primary(0));
        }
        let id = pick(&mut self.primary, Tier::Primary, tried, now).or_else(|| pick(&mut self.backup, Tier::Backup, tried, now))?;
        tried.0.push(id);
        Some(id)
    }

    /// `ngx_http_upstream_free_round_robin_peer`: `failed` is NGX_PEER_FAILED.
    /// Returns the warn line to log, if any. (The `tries` bookkeeping of the
    /// same nginx function lives in `retry::next_upstream`, in one place.)
    pub fn free_peer(&mut self, id: PeerId, failed: bool, now: Instant) -> Option<String> {
        if self.single() {
            self.primary[0].fails = 0;
            return None;
        }
        let mut warn = None;
        let p = self.peer_mut(id);
        if failed {
            p.fails += 1;
            p.accessed = Some(now);
            p.checked = Some(now);
            if p.max_fails > 0 {
                p.effective_weight -= p.weight / p.max_fails as i64;
                if p.fails >= p.max_fails {
                    warn = Some(crate::logs::SERVER_DISABLED.to_string());
                }
            }
            p.effective_weight = p.effective_weight.max(0);
        } else if p.accessed < p.checked {
            p.fails = 0;
        }
        warn
    }
}

/// `ngx_http_upstream_get_peer`: smooth weighted round robin over eligible peers.
fn pick<A>(peers: &mut [Peer<A>], tier: Tier, tried: &Tried, now: Instant) -> Option<PeerId> {
    let mut best: Option<usize> = None;
    let mut total = 0;
    for i in 0..peers.len() {
        let p = &peers[i];
        let disabled = p.max_fails > 0
            && p.fails >= p.max_fails
            && p.checked.is_some_and(|c| now.duration_since(c) <= p.fail_timeout);
        if tried.0.contains(&PeerId { tier, index: i }) || p.down || disabled {
            continue;
        }
        let p = &mut peers[i];
        p.current_weight += p.effective_weight;
        total += p.effective_weight;
        if p.effective_weight < p.weight {
            p.effective_weight += 1;
        }
        if best.is_none_or(|b| peers[i].current_weight > peers[b].current_weight) {
            best = Some(i);
        }
    }
    let p = &mut peers[best?];
    p.current_weight -= total;
    if p.checked.is_none_or(|c| now.duration_since(c) > p.fail_timeout) {
        p.checked = Some(now);
    }
    Some(PeerId { tier, index: best? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16, weight: u32) -> Peer<std::net::SocketAddr> {
        Peer::new(([127, 0, 0, 1], port).into(), weight, 1, Duration::from_secs(10), false)
    }

    #[test]
    fn smooth_weighted_order() {
        let mut rr = RoundRobin::new(vec![peer(1, 5), peer(2, 1), peer(3, 1)], vec![]);
        let now = Instant::now();
        let order: Vec<u16> = (0..7)
            .map(|_| {
                let id = rr.get_peer(&mut Tried::default(), now).unwrap();
                rr.peer(id).addr.port()
            })
            .collect();
        // nginx's documented smooth sequence for weights 5,1,1.
        assert_eq!(order, vec![1, 1, 2, 1, 3, 1, 1]);
    }

    #[test]
    fn a_request_tries_each_server_once_then_no_live_upstreams() {
        let mut rr = RoundRobin::new(vec![peer(1, 1), peer(2, 1)], vec![]);
        let now = Instant::now();
        let mut tried = Tried::default();
        assert!(rr.get_peer(&mut tried, now).is_some());
        assert!(rr.get_peer(&mut tried, now).is_some());
        assert_eq!(rr.get_peer(&mut tried, now), None);
    }

    #[test]
    fn max_fails_disables_for_fail_timeout() {
        let mut rr = RoundRobin::new(vec![peer(1, 1), peer(2, 1)], vec![]);
        let now = Instant::now();
        let id = rr.get_peer(&mut Tried::default(), now).unwrap();
        assert_eq!(rr.free_peer(id, true, now).as_deref(), Some("upstream server temporarily disabled"));
        // Within fail_timeout, only the other server is picked.
        for _ in 0..4 {
            let other = rr.get_peer(&mut Tried::default(), now).unwrap();
            assert_ne!(other, id);
        }
        // After fail_timeout it is eligible again, at a reduced effective
        // weight that climbs back (nginx's slow recovery).
        let later = now + Duration::from_secs(11);
        let picks: Vec<_> = (0..4).map(|_| rr.get_peer(&mut Tried::default(), later).unwrap()).collect();
        assert!(picks.contains(&id));
    }

    #[test]
    fn single_server_is_never_disabled() {
        let mut rr = RoundRobin::new(vec![peer(1, 1)], vec![]);
        let now = Instant::now();
        for _ in 0..3 {
            let id = rr.get_peer(&mut Tried::default(), now).unwrap();
            assert_eq!(rr.free_peer(id, true, now), None);
        }
        rr.primary[0].down = true;
        assert_eq!(rr.get_peer(&mut Tried::default(), now), None);
    }

    #[test]
    fn backups_after_primaries() {
        let mut rr = RoundRobin::new(vec![peer(1, 1)], vec![peer(9, 1)]);
        assert!(!rr.single());
        let now = Instant::now();
        let mut tried = Tried::default();
        assert_eq!(rr.get_peer(&mut tried, now), Some(PeerId::primary(0)));
        assert_eq!(rr.get_peer(&mut tried, now), Some(PeerId::backup(0)));
        assert_eq!(rr.tries(), 2);
    }
}
