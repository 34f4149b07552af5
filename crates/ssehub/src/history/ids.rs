//! Event ids generated for updates published without one.

use parking_lot::Mutex;

/// Generates `urn:uuid:` ids, UUIDv7 whose 12-bit `rand_a` field is a
/// counter, so the ids of one log sort strictly in generation order, even
/// within one millisecond and across clock steps backwards. Each log owns
/// one, and raises its floor to the newest stored update's time when it
/// reopens, so ids generated after a restart sort after older ones.
#[derive(Debug, Default)]
pub struct IdGenerator {
    /// The last generated id's millisecond and counter.
    last: Mutex<(u64, u16)>,
}

impl IdGenerator {
    /// A fresh id.
    pub fn next(&self) -> String {
        let now = crate::clock::unix_ms();
        let (ms, counter) = {
            let mut last = self.last.lock();
            *last = match *last {
                (ms, _) if now > ms => (now, 0),
                (ms, 0xfff) => (ms + 1, 0),
                (ms, c) => (ms, c + 1),
            };
            *last
        };
        let random: [u8; 8] = rand::random();
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
        let [counter_high, counter_low] = counter.to_be_bytes();
        bytes[6] = 0x70 | counter_high;
        bytes[7] = counter_low;
        bytes[8] = 0x80 | (random[0] & 0x3f);
        bytes[9..].copy_from_slice(&random[1..]);
        format!("urn:uuid:{}", uuid::Uuid::from_bytes(bytes))
    }

    /// Makes ids generated from now on sort after ids generated before
    /// `unix_ms`.
    pub fn raise_floor(&self, unix_ms: u64) {
        let mut last = self.last.lock();
        if unix_ms >= last.0 {
            *last = (unix_ms, 0xfff);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_sort_strictly_and_after_the_floor() {
        let ids = IdGenerator::default();
        let generated: Vec<String> = (0..10_000).map(|_| ids.next()).collect();
        assert!(
            generated.windows(2).all(|w| w[0] < w[1]),
            "ids sort in generation order"
        );
        let parsed =
            uuid::Uuid::parse_str(generated[0].strip_prefix("urn:uuid:").unwrap()).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        let future = uuid::Uuid::now_v7().get_timestamp().unwrap().to_unix();
        let future_ms = (future.0 + 3600) * 1000;
        ids.raise_floor(future_ms);
        let after = ids.next();
        let ts = uuid::Uuid::parse_str(after.strip_prefix("urn:uuid:").unwrap())
            .unwrap()
            .get_timestamp()
            .unwrap()
            .to_unix();
        assert!(
            ts.0 * 1000 + u64::from(ts.1 / 1_000_000) > future_ms,
            "floor respected"
        );
    }
}
