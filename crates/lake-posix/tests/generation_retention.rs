//! Generation retention: keep count, pins, removal rules and prune candidates.

use lake_posix::generation;
use lakefs::progress::Silent;

fn commit(lake: &lakefs::Lake, src: &std::path::Path, msg: &str) -> lakefs::ObjectId {
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/version"), msg).unwrap();
    lake_testkit::posix::commit(lake, src, msg, false).commit
}

fn pins(lake: &lakefs::Lake) -> Vec<lakefs::ObjectId> {
    lake.db().pins().unwrap()
}

#[test]
fn keep_pin_remove_and_prune_candidates() {
    let t = tempfile::tempdir().unwrap();
    let (src, root) = (t.path().join("src"), t.path().join("lake"));
    let lake = lakefs::Lake::create(&root, &Default::default()).unwrap();
    let mut commits = Vec::new();
    for i in 1..=5 {
        let c = commit(&lake, &src, &format!("v{i}"));
        commits.push(c);
        generation::deploy(&lake, c, false, &Silent).unwrap();
    }
    generation::set_default(&lake, 5).unwrap();

    assert_eq!(generation::keep(&lake).unwrap(), 3, "default retention");
    assert!(generation::set_keep(&lake, 0).is_err());
    generation::set_keep(&lake, 2).unwrap();
    assert_eq!(generation::keep(&lake).unwrap(), 2);

    // All but the newest two; 3 is protected by the caller, 2 is booted.
    assert_eq!(generation::prune_candidates_with(&lake, 2, &[], None).unwrap(), [1, 2, 3]);
    assert_eq!(generation::prune_candidates_with(&lake, 2, &[3], Some(2)).unwrap(), [1]);

    // Pinned: kept by pruning and by gc (its commit is a pin root).
    generation::pin(&lake, 2).unwrap();
    assert!(generation::get(&lake, 2).unwrap().unwrap().pinned);
    assert_eq!(pins(&lake), [commits[1]]);
    assert_eq!(generation::prune_candidates_with(&lake, 2, &[], None).unwrap(), [1, 3]);
    // The default is never a candidate, whatever its age.
    generation::set_default(&lake, 1).unwrap();
    assert_eq!(generation::prune_candidates_with(&lake, 2, &[], None).unwrap(), [3]);
    assert_eq!(generation::prune_candidates_with(&lake, 10, &[], None).unwrap(), Vec::<u32>::new());

    // Removal refuses the default and the booted generation, naming why.
    let e = generation::remove(&lake, 1).unwrap_err().to_string();
    assert!(e.contains("generation 1 is the default"), "{e}");
    let e = generation::check_removable(&lake, 3, Some(3)).unwrap_err().to_string();
    assert!(e.contains("running system") && e.contains("generation 3"), "{e}");
    assert!(generation::remove(&lake, 9).unwrap_err().to_string().contains("does not exist"));

    // Removing a pinned generation drops its directory, record and pin.
    generation::set_default(&lake, 5).unwrap();
    let g = generation::remove(&lake, 2).unwrap();
    assert!(g.pinned);
    assert!(!generation::dir(&root, 2).exists());
    assert!(generation::get(&lake, 2).unwrap().is_none());
    assert!(pins(&lake).is_empty());
    let left: Vec<u32> = generation::list(&lake).unwrap().iter().map(|g| g.number).collect();
    assert_eq!(left, [1, 3, 4, 5]);
    assert!(std::fs::read_dir(root.join("deploy")).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().starts_with('.')));

    // Unpin releases the gc pin only when no other pinned generation uses the commit.
    let c5 = generation::get(&lake, 5).unwrap().unwrap().commit;
    let g6 = generation::deploy(&lake, c5, true, &Silent).unwrap();
    generation::pin(&lake, 5).unwrap();
    generation::unpin(&lake, g6.number).unwrap();
    assert_eq!(pins(&lake), [c5], "generation 5 still pins the shared commit");
    generation::unpin(&lake, 5).unwrap();
    assert!(pins(&lake).is_empty());
    assert!(!generation::get(&lake, 5).unwrap().unwrap().pinned);

    // Numbers are not reused after a removal.
    generation::remove(&lake, 4).unwrap();
    let c = commit(&lake, &src, "v7");
    assert_eq!(generation::deploy(&lake, c, false, &Silent).unwrap().number, 7);
    assert!(lakefs::verify::verify(&lake, &Silent).unwrap().clean());
}
