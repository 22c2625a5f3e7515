//! Which of two commits of a followed branch is the newer: the one whose
//! history holds the other. Followers decide alone, from their own clone,
//! and the store keeps whichever commit was stored last only if it was
//! stored over the one its follower read (a conditional write), so a follower
//! that fetched late never stores an older commit over a newer one.

use jiff::Timestamp;

/// How the commit a follower fetched stands to the one the store has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// The same commit.
    Same,
    /// The stored commit is in the fetched one's history: the fetched one is newer.
    Descendant,
    /// The fetched commit is in the stored one's history: the store is ahead.
    Ancestor,
    /// Neither holds the other (the branch was rewritten), or the stored
    /// commit is not in this follower's clone (it may be one this follower
    /// has not fetched yet, or one a rewrite dropped).
    Unrelated,
}

/// What a follower does with the commit it fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Store it over the stored one.
    Store,
    /// Nothing: the store has it, or a newer one.
    Leave,
}

/// Whether to store the fetched commit (committed at `fetched_at`) over the
/// stored one (`stored`, with its commit time), given how they relate.
/// Unrelated commits go by commit time, the later winning, so a rewritten
/// branch is followed once its new head is newer than the stored commit,
/// and a follower whose fetch is behind does not go back.
pub fn decide(stored: Option<Timestamp>, fetched_at: Timestamp, relation: Relation) -> Decision {
    let Some(stored_at) = stored else {
        return Decision::Store;
    };
    match relation {
        Relation::Same | Relation::Ancestor => Decision::Leave,
        Relation::Descendant => Decision::Store,
        Relation::Unrelated if fetched_at > stored_at => Decision::Store,
        Relation::Unrelated => Decision::Leave,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_767_225_600 + s).unwrap()
    }

    #[test]
    fn the_first_commit_is_stored() {
        assert_eq!(decide(None, at(0), Relation::Unrelated), Decision::Store);
    }

    #[test]
    fn a_descendant_is_stored_whatever_its_clock() {
        // A commit made on a machine whose clock is behind is still newer.
        assert_eq!(
            decide(Some(at(100)), at(50), Relation::Descendant),
            Decision::Store
        );
    }

    #[test]
    fn an_ancestor_or_the_same_commit_is_left() {
        assert_eq!(
            decide(Some(at(100)), at(200), Relation::Ancestor),
            Decision::Leave
        );
        assert_eq!(
            decide(Some(at(100)), at(100), Relation::Same),
            Decision::Leave
        );
    }

    #[test]
    fn unrelated_commits_go_by_commit_time() {
        assert_eq!(
            decide(Some(at(100)), at(101), Relation::Unrelated),
            Decision::Store,
            "a rewritten branch's newer head"
        );
        assert_eq!(
            decide(Some(at(100)), at(99), Relation::Unrelated),
            Decision::Leave,
            "a commit this follower has not fetched yet"
        );
        assert_eq!(
            decide(Some(at(100)), at(100), Relation::Unrelated),
            Decision::Leave
        );
    }
}
