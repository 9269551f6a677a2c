//! [`Argon2Verifier`]: argon2 password checks that borrow their working memory (19 MiB with the
//! default parameters) from a small pool instead of allocating it for every check.
//!
//! `Argon2::verify_password` allocates its memory blocks on each call; under a burst of logins
//! the allocator keeps the freed buffers (glibc's arenas do not shrink), so resident memory
//! ends at the burst's peak and stays there. With one pooled buffer per permitted concurrent
//! check (see [`LoginGuard::max_concurrent`](crate::LoginGuard::max_concurrent)) the peak is
//! that many buffers, allocated once.

use std::sync::{Arc, Mutex, PoisonError};

use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use subtle::ConstantTimeEq;

/// Parameters asking for more memory than this are refused (64 MiB).
const DEFAULT_MAX_MEMORY_KIB: u32 = 64 * 1024;
/// The longest argon2 output checked (bytes).
const MAX_OUTPUT_LEN: usize = 64;

/// Checks passwords against argon2 PHC strings (`$argon2id$v=19$m=...`), reusing a pool of
/// memory blocks. Clones share the pool.
///
/// # Examples
///
/// ```
/// use argon2::{Argon2, PasswordHasher, password_hash::SaltString};
/// use portcullis_core::Argon2Verifier;
///
/// let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
/// let params = argon2::Params::new(1024, 1, 1, None).unwrap();
/// let hasher = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
/// let hash = hasher.hash_password(b"hunter2", &salt).unwrap().to_string();
///
/// let verifier = Argon2Verifier::new(2);
/// assert!(verifier.verify(b"hunter2", &hash));
/// assert!(!verifier.verify(b"hunter3", &hash));
/// assert_eq!(verifier.pooled(), 1);
/// ```
#[derive(Clone)]
pub struct Argon2Verifier {
    pool: Arc<Mutex<Vec<Vec<Block>>>>,
    pool_size: usize,
    max_memory_kib: u32,
}

impl std::fmt::Debug for Argon2Verifier {
    // By hand: the pooled blocks are never printed (STYLE rule 4), only their number.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Argon2Verifier")
            .field("pool_size", &self.pool_size)
            .field("pooled", &self.pooled())
            .field("max_memory_kib", &self.max_memory_kib)
            .finish()
    }
}

impl Argon2Verifier {
    /// A verifier keeping up to `pool_size` buffers: the number of checks that may run at once
    /// (more concurrent checks still work, with buffers allocated for them and then dropped).
    pub fn new(pool_size: usize) -> Self {
        Self {
            pool: Arc::default(),
            pool_size,
            max_memory_kib: DEFAULT_MAX_MEMORY_KIB,
        }
    }

    /// Refuses hashes whose `m` parameter asks for more than `kib` KiB (default 64 MiB), so a
    /// tampered hash cannot make a check allocate gigabytes.
    ///
    /// # Examples
    ///
    /// ```
    /// let verifier = portcullis_core::Argon2Verifier::new(2).max_memory_kib(32 * 1024);
    /// # let _ = verifier;
    /// ```
    #[must_use]
    pub fn max_memory_kib(mut self, kib: u32) -> Self {
        self.max_memory_kib = kib;
        self
    }

    /// Buffers held in the pool now.
    pub fn pooled(&self) -> usize {
        self.lock().len()
    }

    /// Whether `password` matches the PHC string `hash`, compared in constant time. A hash
    /// that does not parse, is not argon2, or asks for too much memory never matches (and is
    /// logged, without the hash).
    pub fn verify(&self, password: &[u8], hash: &str) -> bool {
        match self.try_verify(password, hash) {
            Ok(matches) => matches,
            Err(reason) => {
                tracing::warn!(target: "portcullis", reason, "unusable password hash");
                false
            }
        }
    }

    /// `Err` with the reason when `hash` is not one this verifier can check (one argon2 run).
    pub(super) fn check_hash(&self, hash: &str) -> Result<(), &'static str> {
        self.try_verify(b"", hash).map(drop)
    }

    fn try_verify(&self, password: &[u8], hash: &str) -> Result<bool, &'static str> {
        let hash = PasswordHash::new(hash).map_err(|_| "not a PHC string")?;
        let algorithm = Algorithm::try_from(hash.algorithm).map_err(|_| "not argon2")?;
        let version = hash
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(|_| "unknown argon2 version")?
            .unwrap_or_default();
        let params = Params::try_from(&hash).map_err(|_| "bad argon2 parameters")?;
        if params.m_cost() > self.max_memory_kib {
            return Err("argon2 memory cost above the limit");
        }
        let mut salt_buffer = [0u8; 64];
        let salt = hash
            .salt
            .ok_or("no salt")?
            .decode_b64(&mut salt_buffer)
            .map_err(|_| "bad salt")?;
        let expected = hash.hash.ok_or("no hash")?;
        let expected = expected.as_bytes();
        if expected.len() > MAX_OUTPUT_LEN {
            return Err("argon2 output too long");
        }
        let mut output = [0u8; MAX_OUTPUT_LEN];
        let output = output
            .get_mut(..expected.len())
            .ok_or("argon2 output too long")?;
        let blocks = params.block_count();
        let mut memory = self.take(blocks);
        let hashed = match memory.get_mut(..blocks) {
            Some(memory) => Argon2::new(algorithm, version, params)
                .hash_password_into_with_memory(password, salt, output, memory)
                .map_err(|_| "argon2 refused the input"),
            None => Err("argon2 memory too small"),
        };
        self.give_back(memory);
        hashed?;
        Ok(bool::from(output.ct_eq(expected)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<Block>>> {
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self, blocks: usize) -> Vec<Block> {
        let mut memory = self.lock().pop().unwrap_or_default();
        if memory.len() < blocks {
            memory.resize(blocks, Block::new());
        }
        memory
    }

    fn give_back(&self, mut memory: Vec<Block>) {
        // The blocks are derived from the password and the salt: wipe them before the buffer
        // waits in the pool or goes back to the allocator, so neither a memory dump nor a
        // `Debug` print can offer a cheaper way to test guesses than argon2 itself. (About
        // 2 ms for 19 MiB, beside a check of tens of milliseconds.)
        memory.fill(Block::new());
        let mut pool = self.lock();
        if pool.len() < self.pool_size {
            pool.push(memory);
        }
    }
}

#[cfg(test)]
mod tests {
    use argon2::{PasswordHasher, password_hash::SaltString};

    use super::*;

    fn hash(password: &str, m_cost: u32) -> String {
        let salt = SaltString::encode_b64(b"a salt of 16 b..").unwrap();
        let params = Params::new(m_cost, 1, 1, None).unwrap();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    #[test]
    fn pooled_memory_is_wiped_and_never_printed() {
        let verifier = Argon2Verifier::new(1);
        assert!(verifier.verify(b"right", &hash("right", 256)));
        let pool = verifier.lock();
        let buffer = pool.first().unwrap();
        assert!(buffer.len() >= 256);
        assert!(
            buffer
                .iter()
                .all(|block| block.as_ref().iter().all(|word| *word == 0))
        );
        drop(pool);
        let shown = format!("{verifier:?}");
        assert!(shown.len() < 200, "{shown}");
        assert!(shown.contains("pooled: 1"), "{shown}");
    }

    #[test]
    fn agrees_with_argon2_and_keeps_at_most_pool_size_buffers() {
        let verifier = Argon2Verifier::new(1);
        let good = hash("right", 256);
        assert!(verifier.verify(b"right", &good));
        assert!(!verifier.verify(b"wrong", &good));
        // The default argon2 hasher's own strings verify too.
        let default = Argon2::default()
            .hash_password(
                b"right",
                &SaltString::encode_b64(b"another salt 16b").unwrap(),
            )
            .unwrap()
            .to_string();
        assert!(verifier.verify(b"right", &default));
        assert_eq!(verifier.pooled(), 1);
        // The pooled buffer grew to the largest check and is reused as is.
        assert!(verifier.lock()[0].len() >= Params::DEFAULT_M_COST as usize);
    }

    #[test]
    fn unusable_hashes_never_match() {
        let verifier = Argon2Verifier::new(1).max_memory_kib(1024);
        for bad in [
            "",
            "plain text",
            "$2b$12$abcdefghijklmnopqrstuv",
            "$argon2id$v=19$m=256,t=1,p=1$c2FsdA",
        ] {
            assert!(!verifier.verify(b"x", bad), "{bad}");
        }
        assert!(
            !verifier.verify(b"right", &hash("right", 4096)),
            "above the memory limit"
        );
        assert_eq!(verifier.pooled(), 0);
    }
}
