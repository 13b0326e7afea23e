//! The connections of a multi-process group once it has formed ([`crate::rendezvous`]): a star
//! of TCP streams through rank 0, carrying length-prefixed messages, and the few exchanges
//! built on them that every backend needs (bytes broadcast from rank 0, a barrier, an abort).
//!
//! A frame is a kind byte, a little-endian `u64` length and that many bytes. Lengths are
//! checked against [`MAX_MESSAGE`] before anything is read, and a message is read as its bytes
//! arrive (the buffer grows with them), so a peer that claims a huge message and sends little
//! costs little memory. Every read and write has the group's timeout, so a peer that stops
//! answering is an error, not a hang.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::{Error, Result};

/// The largest message a member accepts: 1 GiB (one tensor of 256 Mi `f32` values).
pub const MAX_MESSAGE: u64 = 1 << 30;

/// The longest abort reason sent; longer ones are cut (at a character boundary).
const MAX_REASON: usize = 4096;

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// Bytes for the receiver.
    Data = 1,
    /// The group ends: the rank that failed (`u32`) and why (UTF-8).
    Abort = 2,
    /// Rank 0 to a joining rank: every rank has joined.
    Welcome = 3,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Self> {
        [Kind::Data, Kind::Abort, Kind::Welcome].into_iter().find(|k| *k as u8 == byte)
    }
}

/// Writes one frame.
pub(crate) fn write_frame(stream: &mut TcpStream, kind: Kind, payload: &[u8]) -> std::io::Result<()> {
    let mut head = [0u8; 9];
    head[0] = kind as u8;
    head[1..].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    if payload.len() <= 4096 {
        // One write for small frames: with TCP_NODELAY each write is a packet.
        let mut frame = Vec::with_capacity(9 + payload.len());
        frame.extend_from_slice(&head);
        frame.extend_from_slice(payload);
        stream.write_all(&frame)
    } else {
        stream.write_all(&head)?;
        stream.write_all(payload)
    }
}

/// Why reading a frame failed.
pub(crate) enum ReadError {
    /// The stream failed or ended.
    Io(std::io::Error),
    /// The peer broke the protocol (an unknown kind, an oversized length).
    Protocol(String),
}

/// Reads one frame: its kind and payload.
pub(crate) fn read_frame(stream: &mut TcpStream) -> std::result::Result<(Kind, Vec<u8>), ReadError> {
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).map_err(ReadError::Io)?;
    let kind =
        Kind::from_byte(head[0]).ok_or_else(|| ReadError::Protocol(format!("unknown message kind {}", head[0])))?;
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&head[1..]);
    let len = u64::from_le_bytes(len_bytes);
    if len > MAX_MESSAGE {
        return Err(ReadError::Protocol(format!("a message of {len} bytes, more than the limit of {MAX_MESSAGE}")));
    }
    let mut payload = Vec::new();
    stream.take(len).read_to_end(&mut payload).map_err(ReadError::Io)?;
    if payload.len() as u64 != len {
        return Err(ReadError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("the connection closed {} bytes into a message of {len}", payload.len()),
        )));
    }
    Ok((kind, payload))
}

/// An abort frame's payload: the failed rank and the reason, cut to [`MAX_REASON`] bytes.
pub(crate) fn abort_payload(rank: usize, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = (rank as u32).to_le_bytes().to_vec();
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    payload
}

/// The failed rank and reason of an abort frame (`sender` when it is malformed).
pub(crate) fn parse_abort(payload: &[u8], sender: usize) -> (usize, String) {
    match payload.split_first_chunk::<4>() {
        Some((rank, reason)) => (u32::from_le_bytes(*rank) as usize, String::from_utf8_lossy(reason).into_owned()),
        None => (sender, "it aborted".into()),
    }
}

/// Whether an I/O error is a timeout (`set_read_timeout` reports `WouldBlock` on unix).
fn is_timeout(error: &std::io::Error) -> bool {
    matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

/// One member's connections to the rest of its group: rank 0 holds a stream to every other
/// rank, every other rank one stream to rank 0.
///
/// Made by [`crate::rendezvous`] ([`crate::RendezvousConfig::join`]); the collectives
/// ([`crate::TcpCollective`], and the NCCL one's bookkeeping) talk through it. After any
/// failure (an abort received or sent, a lost connection, a timeout) every later call fails
/// with [`Error::ReplicaFailed`] naming the first failure.
#[derive(Debug)]
pub struct Store {
    rank: usize,
    world: usize,
    /// Rank 0: the streams of ranks `1..world`, in rank order. Other ranks: the stream to 0.
    streams: Vec<TcpStream>,
    timeout: Duration,
    failed: Option<(usize, String)>,
}

impl Store {
    /// A member over `streams` (see the field), with `timeout` on every read and write.
    pub(crate) fn new(rank: usize, world: usize, streams: Vec<TcpStream>, timeout: Duration) -> Result<Self> {
        for (i, stream) in streams.iter().enumerate() {
            let peer = if rank == 0 { i + 1 } else { 0 };
            let setup = stream
                .set_read_timeout(Some(timeout))
                .and_then(|()| stream.set_write_timeout(Some(timeout)))
                .and_then(|()| stream.set_nodelay(true));
            setup.map_err(|e| Error::Network {
                peer: format!("rank {peer}"),
                what: "setting up the connection".into(),
                detail: e.to_string(),
            })?;
        }
        Ok(Self { rank, world, streams, timeout, failed: None })
    }

    /// This member's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of members.
    pub fn world_size(&self) -> usize {
        self.world
    }

    /// The first failure seen, as an error, if there was one.
    pub(crate) fn check(&self) -> Result<()> {
        match &self.failed {
            Some((rank, reason)) => Err(Error::ReplicaFailed { rank: *rank, reason: reason.clone() }),
            None => Ok(()),
        }
    }

    /// The stream to `peer` (rank 0 reaches every rank, the others only rank 0).
    fn stream(&mut self, peer: usize) -> Result<&mut TcpStream> {
        let index = match (self.rank, peer) {
            (0, p) if p >= 1 && p < self.world => p - 1,
            (r, 0) if r != 0 => 0,
            _ => {
                return Err(Error::Invalid(format!(
                    "rank {} of {} has no connection to rank {peer} (every message goes through rank 0)",
                    self.rank, self.world
                )))
            }
        };
        self.streams
            .get_mut(index)
            .ok_or_else(|| Error::Invalid(format!("rank {}: no stream for rank {peer}", self.rank)))
    }

    /// Sends `payload` to `peer` as one message.
    pub(crate) fn send(&mut self, peer: usize, payload: &[u8]) -> Result<()> {
        self.check()?;
        let result = write_frame(self.stream(peer)?, Kind::Data, payload);
        result.map_err(|e| self.lost(peer, "sending to", e))
    }

    /// The next message from `peer`. An abort from it ends the group: the failure is recorded
    /// (and, on rank 0, passed on to every other rank) and returned.
    pub(crate) fn recv(&mut self, peer: usize) -> Result<Vec<u8>> {
        self.check()?;
        let read = read_frame(self.stream(peer)?);
        match read {
            Ok((Kind::Data, payload)) => Ok(payload),
            Ok((Kind::Abort, payload)) => {
                let (rank, reason) = parse_abort(&payload, peer);
                Err(self.fail(rank, reason))
            }
            Ok((Kind::Welcome, _)) => Err(self.fail(peer, "it broke the protocol: a welcome after joining".into())),
            Err(ReadError::Protocol(detail)) => Err(self.fail(peer, format!("it broke the protocol: {detail}"))),
            Err(ReadError::Io(e)) => Err(self.lost(peer, "waiting for", e)),
        }
    }

    /// The error for a failed read or write with `peer`, recorded as that rank's failure
    /// (a timeout stays a timeout, a closed or reset connection means the peer left).
    fn lost(&mut self, peer: usize, doing: &str, error: std::io::Error) -> Error {
        if is_timeout(&error) {
            let reason = format!("{doing} rank {peer} timed out after {:.1} s", self.timeout.as_secs_f64());
            let _ = self.fail(peer, reason.clone());
            return Error::Network {
                peer: format!("rank {peer}"),
                what: format!("{doing} rank {peer}"),
                detail: reason,
            };
        }
        self.fail(peer, format!("it left the group (connection lost: {error})"))
    }

    /// Records the failure of `rank` (keeping an earlier one), passes it on to every other
    /// rank when this is rank 0, and returns it as an error.
    fn fail(&mut self, rank: usize, reason: String) -> Error {
        if self.failed.is_none() {
            self.failed = Some((rank, reason));
            if self.rank == 0 {
                self.broadcast_abort();
            }
        }
        let (rank, reason) = self.failed.clone().unwrap_or_default();
        Error::ReplicaFailed { rank, reason }
    }

    /// Rank 0: tells every other rank about the recorded failure (best effort: a rank that is
    /// gone cannot be told).
    fn broadcast_abort(&mut self) {
        if let Some((rank, reason)) = &self.failed {
            let payload = abort_payload(*rank, reason);
            for (i, stream) in self.streams.iter_mut().enumerate() {
                if i + 1 != *rank {
                    let _ = write_frame(stream, Kind::Abort, &payload);
                }
            }
        }
    }

    /// Ends the group after a failure of this rank: every other rank's pending and later calls
    /// fail with [`Error::ReplicaFailed`] naming this rank and `reason`. A second abort, or one
    /// after another failure, keeps the first.
    pub fn abort(&mut self, reason: &str) {
        if self.failed.is_some() {
            return;
        }
        self.failed = Some((self.rank, reason.to_string()));
        if self.rank == 0 {
            self.broadcast_abort();
        } else if let Some(stream) = self.streams.first_mut() {
            // Rank 0 reads it in its next exchange with this rank and passes it on.
            let _ = write_frame(stream, Kind::Abort, &abort_payload(self.rank, reason));
        }
    }

    /// Rank 0's `bytes` on every rank (the others' are ignored).
    pub fn broadcast_bytes(&mut self, bytes: &[u8]) -> Result<Vec<u8>> {
        if self.rank == 0 {
            for peer in 1..self.world {
                self.send(peer, bytes)?;
            }
            Ok(bytes.to_vec())
        } else {
            self.recv(0)
        }
    }

    /// Returns once every rank has called it: each rank checks in with rank 0, which answers
    /// when all have.
    pub fn barrier(&mut self) -> Result<()> {
        if self.rank == 0 {
            for peer in 1..self.world {
                self.recv(peer)?;
            }
            for peer in 1..self.world {
                self.send(peer, &[])?;
            }
        } else {
            self.send(0, &[])?;
            self.recv(0)?;
        }
        Ok(())
    }
}
