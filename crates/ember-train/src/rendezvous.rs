//! Joining a multi-process data-parallel group the way `torchrun` sets one up: every process
//! gets `WORLD_SIZE`, its `RANK` (and `LOCAL_RANK`, its GPU on its machine), and the address of
//! rank 0 (`MASTER_ADDR`, `MASTER_PORT`). Rank 0 listens there, the others connect, and once all
//! have joined each gets a [`Store`]: its connections to the group.
//!
//! The variables are torchrun's, but the processes are started without it: its agent process
//! serves a store of its own on `MASTER_PORT`, so a process it starts is refused (it sets
//! `TORCHELASTIC_USE_AGENT_STORE`).
//!
//! The variables come through a lookup function ([`RendezvousConfig::from_lookup`]), so a
//! program reads them from its environment ([`RendezvousConfig::from_env`]) and a test passes
//! its own. Each is checked, and a bad one is an error naming it and its value.
//!
//! Joining is bounded: rank 0 waits at most [`RendezvousOptions::join_timeout`] for the
//! others, and they keep trying to reach rank 0 (which may start after them) as long, then
//! fail naming the address. A connection that does not start with ember's greeting (a port
//! scanner, another program) is closed and ignored; a member of another group (a different
//! world size, a rank out of range or taken twice) fails the rendezvous.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::store::{parse_abort, read_frame, write_frame, Kind, ReadError, Store};
use crate::{Error, Result};

/// The most processes a group may have.
pub const MAX_WORLD_SIZE: usize = 1024;

/// The first bytes a joining rank sends: ember's protocol and its version.
const GREETING: &[u8; 12] = b"ember-dp\x00\x00\x00\x01";

/// How long rank 0 waits for a connected process to greet it.
const GREETING_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and as which rank this process joins its group: what `torchrun` sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RendezvousConfig {
    /// Rank 0's address (`MASTER_ADDR`): a host name or an IP address of its machine.
    pub master_addr: String,
    /// Rank 0's port (`MASTER_PORT`).
    pub master_port: u16,
    /// Processes in the group (`WORLD_SIZE`), `1..=MAX_WORLD_SIZE`.
    pub world_size: usize,
    /// This process's rank (`RANK`), `0..world_size`.
    pub rank: usize,
    /// This process's index on its machine (`LOCAL_RANK`; `RANK` when unset): which GPU it uses.
    pub local_rank: usize,
}

/// How long joining and each exchange may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RendezvousOptions {
    /// How long rank 0 waits for every other rank, and how long the others keep trying to
    /// reach rank 0. Default 300 s.
    pub join_timeout: Duration,
    /// How long a member waits for a peer's message (or to hand one over) once the group has
    /// formed. Default 1800 s: rank 0 writes checkpoints and logs while the others wait.
    pub timeout: Duration,
}

impl Default for RendezvousOptions {
    fn default() -> Self {
        Self { join_timeout: Duration::from_secs(300), timeout: Duration::from_secs(1800) }
    }
}

/// `variable`'s value as a whole number.
fn number(variable: &'static str, value: &str) -> Result<usize> {
    value.parse::<usize>().map_err(|_| Error::BadVariable {
        variable,
        value: value.to_string(),
        problem: "not a whole number".into(),
    })
}

impl RendezvousConfig {
    /// Reads and checks `WORLD_SIZE`, `RANK`, `LOCAL_RANK` (optional), `MASTER_ADDR` and
    /// `MASTER_PORT` through `lookup` (a variable's value, `None` when unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |variable: &'static str, hint: &'static str| {
            lookup(variable).ok_or(Error::MissingVariable { variable, hint })
        };
        let bad = |variable: &'static str, value: &str, problem: String| Error::BadVariable {
            variable,
            value: value.to_string(),
            problem,
        };

        if let Some(value) = lookup("TORCHELASTIC_USE_AGENT_STORE") {
            // torchrun's agent serves its own store on MASTER_PORT, where rank 0 must listen.
            return Err(bad(
                "TORCHELASTIC_USE_AGENT_STORE",
                &value,
                "started by torchrun, whose agent holds MASTER_PORT; start each process directly with \
                 WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set"
                    .into(),
            ));
        }
        let value = get("WORLD_SIZE", "set it to the number of processes in the group")?;
        let world_size = number("WORLD_SIZE", &value)?;
        if world_size == 0 {
            return Err(bad("WORLD_SIZE", &value, "a group needs at least one process".into()));
        }
        if world_size > MAX_WORLD_SIZE {
            return Err(bad("WORLD_SIZE", &value, format!("at most {MAX_WORLD_SIZE} processes")));
        }

        let value = get("RANK", "set it to this process's rank, 0 to WORLD_SIZE - 1")?;
        let rank = number("RANK", &value)?;
        if rank >= world_size {
            return Err(bad("RANK", &value, format!("must be below WORLD_SIZE ({world_size})")));
        }

        let local_rank = match lookup("LOCAL_RANK") {
            None => rank,
            Some(value) => {
                let local = number("LOCAL_RANK", &value)?;
                if local >= world_size {
                    return Err(bad("LOCAL_RANK", &value, format!("must be below WORLD_SIZE ({world_size})")));
                }
                local
            }
        };

        let master_addr = get("MASTER_ADDR", "set it to the host name or IP address of rank 0's machine")?;
        if master_addr.is_empty() || master_addr.len() > 255 || master_addr.chars().any(char::is_whitespace) {
            return Err(bad("MASTER_ADDR", &master_addr, "not a host name or IP address".into()));
        }

        let value = get("MASTER_PORT", "set it to the port rank 0 listens on, e.g. 29500")?;
        let master_port =
            value.parse::<u16>().map_err(|_| bad("MASTER_PORT", &value, "not a port number (1 to 65535)".into()))?;
        if master_port == 0 {
            return Err(bad("MASTER_PORT", &value, "port 0 cannot be reached: choose a fixed port".into()));
        }

        Ok(Self { master_addr, master_port, world_size, rank, local_rank })
    }

    /// [`RendezvousConfig::from_lookup`] on this process's environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Joins the group: rank 0 listens on `MASTER_ADDR:MASTER_PORT` and waits for the others,
    /// the others connect to it.
    pub fn join(&self, options: &RendezvousOptions) -> Result<Store> {
        if self.rank == 0 {
            MasterListener::bind(&self.master_addr, self.master_port, self.world_size)?.accept(options)
        } else {
            connect(&self.master_addr, self.master_port, self.rank, self.world_size, options)
        }
    }
}

/// Checks a world size and rank given directly (not through the variables).
fn check_group(rank: usize, world: usize) -> Result<()> {
    if world == 0 || world > MAX_WORLD_SIZE {
        return Err(Error::Invalid(format!("a group has 1 to {MAX_WORLD_SIZE} processes, not {world}")));
    }
    if rank >= world {
        return Err(Error::Invalid(format!("rank {rank} is not below the world size {world}")));
    }
    Ok(())
}

fn network(peer: impl std::fmt::Display, what: impl Into<String>, detail: impl std::fmt::Display) -> Error {
    Error::Network { peer: peer.to_string(), what: what.into(), detail: detail.to_string() }
}

/// Rank 0's listening socket: bound first (so a test can bind port 0 and hand the port it got
/// to the other ranks), then [`MasterListener::accept`] forms the group.
#[derive(Debug)]
pub struct MasterListener {
    listener: TcpListener,
    address: SocketAddr,
    world: usize,
}

impl MasterListener {
    /// Listens on `addr:port` (port 0: any free port, see [`MasterListener::port`]) for the
    /// other `world - 1` ranks.
    pub fn bind(addr: &str, port: u16, world: usize) -> Result<Self> {
        check_group(0, world)?;
        let listener = TcpListener::bind((addr, port))
            .map_err(|e| network(format!("{addr}:{port}"), "rank 0 listening for the group", e))?;
        let address = listener.local_addr().map_err(|e| network(format!("{addr}:{port}"), "rank 0 listening", e))?;
        Ok(Self { listener, address, world })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Waits until every other rank has connected and greeted (at most
    /// `options.join_timeout`), then welcomes them all and returns rank 0's [`Store`].
    pub fn accept(self, options: &RendezvousOptions) -> Result<Store> {
        let deadline = Instant::now() + options.join_timeout;
        let mut streams: Vec<Option<TcpStream>> = (1..self.world).map(|_| None).collect();
        let mut joined = 0;
        self.listener.set_nonblocking(true).map_err(|e| network(self.address, "rank 0 listening", e))?;
        while joined + 1 < self.world {
            let (mut stream, from) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        let missing: Vec<String> = streams
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| s.is_none())
                            .map(|(i, _)| (i + 1).to_string())
                            .collect();
                        let error = network(
                            self.address,
                            "rank 0 waiting for the group",
                            format!(
                                "ranks {} did not join within {} s (WORLD_SIZE is {})",
                                missing.join(", "),
                                options.join_timeout.as_secs(),
                                self.world
                            ),
                        );
                        refuse_all(&mut streams, &error);
                        return Err(error);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                Err(e) => return Err(network(self.address, "rank 0 accepting a connection", e)),
            };
            let Some(greeted) = greeting(&mut stream) else {
                // Not one of ours: closed by dropping it.
                continue;
            };
            let checked = greeted.and_then(|(rank, world)| {
                if world != self.world {
                    Err(format!("it says WORLD_SIZE is {world}, rank 0 says {}", self.world))
                } else if rank == 0 || rank >= self.world {
                    Err(format!("rank {rank} is not one of 1 to {}", self.world - 1))
                } else if streams[rank - 1].is_some() {
                    Err(format!("rank {rank} joined twice"))
                } else {
                    Ok(rank)
                }
            });
            match checked {
                Ok(rank) => {
                    streams[rank - 1] = Some(stream);
                    joined += 1;
                }
                Err(problem) => {
                    let error = network(from, "rank 0 forming the group", problem);
                    let _ = write_frame(&mut stream, Kind::Abort, &crate::store::abort_payload(0, &error.to_string()));
                    refuse_all(&mut streams, &error);
                    return Err(error);
                }
            }
        }
        let mut streams: Vec<TcpStream> = streams.into_iter().flatten().collect();
        for (i, stream) in streams.iter_mut().enumerate() {
            stream.set_nonblocking(false).map_err(|e| network(format!("rank {}", i + 1), "rank 0 welcoming", e))?;
            stream
                .set_write_timeout(Some(options.timeout))
                .map_err(|e| network(format!("rank {}", i + 1), "rank 0 welcoming", e))?;
            write_frame(stream, Kind::Welcome, &[])
                .map_err(|e| network(format!("rank {}", i + 1), "rank 0 welcoming", e))?;
        }
        Store::new(0, self.world, streams, options.timeout)
    }
}

/// Tells every rank joined so far that the group will not form.
fn refuse_all(streams: &mut [Option<TcpStream>], error: &Error) {
    let payload = crate::store::abort_payload(0, &error.to_string());
    for stream in streams.iter_mut().flatten() {
        let _ = stream.set_nonblocking(false);
        let _ = write_frame(stream, Kind::Abort, &payload);
    }
}

/// A joining process's greeting: `None` when it is not ember's (or does not come within
/// [`GREETING_TIMEOUT`]), else its rank and world size, or what is wrong with it.
#[allow(clippy::type_complexity)]
fn greeting(stream: &mut TcpStream) -> Option<std::result::Result<(usize, usize), String>> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(GREETING_TIMEOUT)).ok()?;
    let mut bytes = [0u8; 20];
    stream.read_exact(&mut bytes).ok()?;
    if bytes[..8] != GREETING[..8] {
        return None;
    }
    if bytes[..12] != GREETING[..] {
        return Some(Err("it speaks another version of ember's protocol".into()));
    }
    let word = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
    Some(Ok((word(12), word(16))))
}

/// Rank `rank`'s side: connects to rank 0 at `addr:port` (retrying until
/// `options.join_timeout`: rank 0 may start later), greets it, and waits for every rank to
/// join.
pub fn connect(addr: &str, port: u16, rank: usize, world: usize, options: &RendezvousOptions) -> Result<Store> {
    check_group(rank, world)?;
    if rank == 0 {
        return Err(Error::Invalid("rank 0 listens (MasterListener); it does not connect".into()));
    }
    let master = format!("{addr}:{port}");
    let deadline = Instant::now() + options.join_timeout;
    let mut stream = loop {
        let attempt = (addr, port).to_socket_addrs().and_then(|addrs| {
            let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the name resolves to no address");
            for a in addrs {
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .clamp(Duration::from_millis(100), Duration::from_secs(5));
                match TcpStream::connect_timeout(&a, left) {
                    Ok(stream) => return Ok(stream),
                    Err(e) => last = e,
                }
            }
            Err(last)
        });
        match attempt {
            Ok(stream) => break stream,
            Err(e) if Instant::now() >= deadline => {
                return Err(network(
                    &master,
                    format!("rank {rank} joining rank 0"),
                    format!(
                    "no answer within {} s ({e}); is rank 0 running, and are MASTER_ADDR and MASTER_PORT its address?",
                    options.join_timeout.as_secs()
                ),
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let what = format!("rank {rank} joining rank 0");
    let mut hello = GREETING.to_vec();
    hello.extend_from_slice(&(rank as u32).to_le_bytes());
    hello.extend_from_slice(&(world as u32).to_le_bytes());
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
    stream
        .set_read_timeout(Some(left))
        .and_then(|()| stream.set_write_timeout(Some(left)))
        .and_then(|()| stream.write_all(&hello))
        .map_err(|e| network(&master, what.clone(), e))?;
    match read_frame(&mut stream) {
        Ok((Kind::Welcome, _)) => Store::new(rank, world, vec![stream], options.timeout),
        Ok((Kind::Abort, payload)) => Err(network(&master, what, parse_abort(&payload, 0).1)),
        Ok((Kind::Data, _)) => Err(network(&master, what, "rank 0 broke the protocol")),
        Err(ReadError::Protocol(detail)) => Err(network(&master, what, detail)),
        Err(ReadError::Io(e)) => Err(network(
            &master,
            what,
            format!("the group did not form within {} s ({e})", options.join_timeout.as_secs()),
        )),
    }
}
