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
    /// Connections in use (`peer->conns`: counted from get to free; an
    /// idle keepalive connection is not one).
    conns: u64,
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
            conns: 0,
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
    /// `least_conn` (`ngx_http_upstream_get_least_conn_peer`) instead of
    /// smooth weighted round robin.
    pub least_conn: bool,
}

/// The per-request `rrp->tried` bitmap.
#[derive(Debug, Clone, Default)]
pub struct Tried(Vec<PeerId>);

impl<A> RoundRobin<A> {
    pub fn new(primary: Vec<Peer<A>>, backup: Vec<Peer<A>>) -> Self {
        RoundRobin { primary, backup, least_conn: false }
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
            let p = &mut self.primary[0];
            if p.down {
                return None;
            }
            p.conns += 1;
            return Some(PeerId::primary(0));
        }
        let pick = if self.least_conn { pick_least_conn } else { pick };
        let id = pick(&mut self.primary, Tier::Primary, tried, now).or_else(|| pick(&mut self.backup, Tier::Backup, tried, now))?;
        tried.0.push(id);
        self.peer_mut(id).conns += 1;
        Some(id)
    }

    /// Connections in use on a peer.
    pub fn conns(&self, id: PeerId) -> u64 {
        self.peer(id).conns
    }

    /// `ngx_http_upstream_free_round_robin_peer`: `failed` is NGX_PEER_FAILED.
    /// Returns the warn line to log, if any. (The `tries` bookkeeping of the
    /// same nginx function lives in `retry::next_upstream`, in one place.)
    pub fn free_peer(&mut self, id: PeerId, failed: bool, now: Instant) -> Option<String> {
        {
            let p = self.peer_mut(id);
            p.conns = p.conns.saturating_sub(1);
        }
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

/// `ngx_http_upstream_get_least_conn_peer` over one tier: the usable peer
/// with the fewest connections per weight (`conns * best.weight <
/// best.conns * weight`); several with the same ratio are chosen among by
/// smooth weighted round robin, starting from the first of them.
fn pick_least_conn<A>(peers: &mut [Peer<A>], tier: Tier, tried: &Tried, now: Instant) -> Option<PeerId> {
    let usable = |p: &Peer<A>, i: usize| {
        let disabled = p.max_fails > 0 && p.fails >= p.max_fails && p.checked.is_some_and(|c| now.duration_since(c) <= p.fail_timeout);
        !(tried.0.contains(&PeerId { tier, index: i }) || p.down || disabled)
    };
    let ratio_lt = |a: &Peer<A>, b: &Peer<A>| (a.conns as i128) * (b.weight as i128) < (b.conns as i128) * (a.weight as i128);
    let ratio_eq = |a: &Peer<A>, b: &Peer<A>| (a.conns as i128) * (b.weight as i128) == (b.conns as i128) * (a.weight as i128);
    let mut best: Option<usize> = None;
    let mut many = false;
    for i in 0..peers.len() {
        if !usable(&peers[i], i) {
            continue;
        }
        match best {
            Some(b) if !ratio_lt(&peers[i], &peers[b]) => {
                if ratio_eq(&peers[i], &peers[b]) {
                    many = true;
                }
            }
            _ => {
                best = Some(i);
                many = false;
            }
        }
    }
    let mut b = best?;
    let mut total = 0;
    if many {
        let first = b;
        for i in first..peers.len() {
            if !usable(&peers[i], i) || !ratio_eq(&peers[i], &peers[b]) {
                continue;
            }
            let p = &mut peers[i];
            p.current_weight += p.effective_weight;
            total += p.effective_weight;
            if p.effective_weight < p.weight {
                p.effective_weight += 1;
            }
            if peers[i].current_weight > peers[b].current_weight {
                b = i;
            }
        }
    }
    let p = &mut peers[b];
    p.current_weight -= total;
    if p.checked.is_none_or(|c| now.duration_since(c) > p.fail_timeout) {
        p.checked = Some(now);
    }
    Some(PeerId { tier, index: b })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16, weight: u32) -> Peer<std::net::SocketAddr> {
        Peer::new(([127, 0, 0, 1], port).into(), weight, 1, Duration::from_secs(10), false)
    }

    #[test]
    fn least_conn_picks_the_fewest_connections_per_weight() {
        let now = Instant::now();
        let ports = |rr: &RoundRobin<std::net::SocketAddr>, ids: &[PeerId]| ids.iter().map(|&id| rr.peer(id).addr.port()).collect::<Vec<_>>();
        // Requests that stay open: each goes where the fewest are; among
        // ties the round robin's current weights carry over (the 4th: all
        // at one, and peer 3 has the highest current weight).
        let mut rr = RoundRobin::new(vec![peer(1, 1), peer(2, 1), peer(3, 1)], vec![]);
        rr.least_conn = true;
        let held: Vec<PeerId> = (0..6).map(|_| rr.get_peer(&mut Tried::default(), now).unwrap()).collect();
        assert_eq!(ports(&rr, &held), [1, 2, 3, 3, 2, 1]);
        // Peer 2's two finish: the next two go to it.
        rr.free_peer(held[1], false, now);
        rr.free_peer(held[4], false, now);
        let next: Vec<PeerId> = (0..2).map(|_| rr.get_peer(&mut Tried::default(), now).unwrap()).collect();
        assert_eq!(ports(&rr, &next), [2, 2]);
        // Per weight: weight 3 takes three for each of weight 1's.
        let mut rr = RoundRobin::new(vec![peer(1, 3), peer(2, 1)], vec![]);
        rr.least_conn = true;
        let held: Vec<PeerId> = (0..8).map(|_| rr.get_peer(&mut Tried::default(), now).unwrap()).collect();
        let on = |port| ports(&rr, &held).iter().filter(|&&p| p == port).count();
        assert_eq!((on(1), on(2)), (6, 2));
        // Requests that finish at once: always a tie, so weighted round robin.
        let mut rr = RoundRobin::new(vec![peer(1, 5), peer(2, 1), peer(3, 1)], vec![]);
        rr.least_conn = true;
        let order: Vec<u16> = (0..7)
            .map(|_| {
                let id = rr.get_peer(&mut Tried::default(), now).unwrap();
                rr.free_peer(id, false, now);
                rr.peer(id).addr.port()
            })
            .collect();
        assert_eq!(order, vec![1, 1, 2, 1, 3, 1, 1]);
        // Tried peers are skipped; with none left, None.
        let mut rr = RoundRobin::new(vec![peer(1, 1), peer(2, 1)], vec![]);
        rr.least_conn = true;
        let mut tried = Tried::default();
        let a = rr.get_peer(&mut tried, now).unwrap();
        let b = rr.get_peer(&mut tried, now).unwrap();
        assert_ne!(a, b);
        assert_eq!(rr.get_peer(&mut tried, now), None);
        assert_eq!((rr.conns(a), rr.conns(b)), (1, 1));
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
