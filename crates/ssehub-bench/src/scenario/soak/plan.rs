//! Which topics a soak's subscriptions select: each selects two distinct
//! topics, and every topic is selected by as many subscriptions as the
//! others (when the subscriptions are a multiple of the topics).

/// The topics and the two each held subscription selects.
#[derive(Debug)]
pub(super) struct Plan {
    /// Topic names.
    pub(super) topics: Vec<String>,
    /// The two topics (indices) of each held subscription.
    pub(super) pairs: Vec<(usize, usize)>,
    /// How many held subscriptions select each topic.
    pub(super) audience: Vec<u64>,
}

impl Plan {
    /// `subscriptions` over `topics` topics (at least two). Subscription i
    /// selects topic i mod T and the one 1 + (i div T) mod (T - 1) further
    /// on: each run of T subscriptions selects every topic twice.
    pub(super) fn new(subscriptions: usize, topics: usize) -> anyhow::Result<Plan> {
        anyhow::ensure!(topics >= 2, "--topics must be at least 2");
        let pairs: Vec<(usize, usize)> = (0..subscriptions)
            .map(|i| {
                let first = i % topics;
                (first, (first + 1 + (i / topics) % (topics - 1)) % topics)
            })
            .collect();
        let mut audience = vec![0u64; topics];
        for &(a, b) in &pairs {
            audience[a] += 1;
            audience[b] += 1;
        }
        Ok(Plan {
            topics: (0..topics).map(|t| format!("soak-{t}")).collect(),
            pairs,
            audience,
        })
    }

    /// The deliveries owed to the held subscriptions for `acked`
    /// acknowledged publishes per topic.
    pub(super) fn owed(&self, acked: &[u64]) -> u64 {
        acked.iter().zip(&self.audience).map(|(n, a)| n * a).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subscription_selects_two_topics_and_every_topic_as_many() {
        let plan = Plan::new(5000, 100).unwrap();
        assert_eq!(plan.topics.len(), 100);
        assert!(plan
            .pairs
            .iter()
            .all(|&(a, b)| a != b && a < 100 && b < 100));
        assert!(
            plan.audience.iter().all(|&n| n == 100),
            "{:?}",
            plan.audience
        );
        let distinct: std::collections::HashSet<_> = plan.pairs.iter().collect();
        assert_eq!(
            distinct.len(),
            5000,
            "no two subscriptions select the same pair"
        );
        assert_eq!(plan.owed(&[1; 100]), 10_000);
        assert_eq!(plan.owed(&[0, 3]), 300);
        assert!(Plan::new(10, 1).is_err());
        let small = Plan::new(3, 2).unwrap();
        assert_eq!(small.pairs, [(0, 1), (1, 0), (0, 1)]);
        assert_eq!(small.audience, [3, 3]);
    }
}
