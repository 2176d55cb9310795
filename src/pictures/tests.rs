//! The pictures from small, hand-made traces and histories: what they mark, and that both
//! files are what they claim to be.

use super::lander::{self, Outcome};
use super::render::{render_png, render_svg, write, Picture};
use super::{source_curves, visitation};
use crate::eval::trace::Trace;
use crate::tasks::{LearningHistory, Split, TaskConfig, TaskParams, TaskSuite};

fn suite(yaml: &str) -> TaskSuite {
    let mut cfg = TaskConfig::from_yaml(yaml).unwrap();
    cfg.split.max_tasks = Some(20);
    TaskSuite::from_config(&cfg).unwrap()
}

fn darkroom() -> TaskSuite {
    suite(include_str!("../../conf/task/darkroom.yaml"))
}

fn trace(suite: &TaskSuite, task: usize, episode: usize, states: Vec<u32>, ret: f32) -> Trace {
    let n = states.len() - 1;
    Trace {
        task,
        split: suite.split(task).unwrap(),
        params: suite.tasks()[task].clone(),
        episode,
        ret,
        terminated: false,
        actions: vec![0; n],
        rewards: vec![0.0; n],
        final_state: states[n],
        states: states[..n].to_vec(),
        features: vec![],
        final_features: vec![],
    }
}

/// A PNG's width and height, from its signature and IHDR chunk.
pub(crate) fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

fn check_files(p: &impl Picture) -> String {
    let svg = render_svg(p).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    let png = render_png(p).unwrap();
    assert_eq!(png_size(&png), p.size());
    // Not a blank image: several colours.
    let decoded = png::Decoder::new(std::io::Cursor::new(&png));
    let mut reader = decoded.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    reader.next_frame(&mut buf).unwrap();
    let colours: std::collections::BTreeSet<&[u8]> = buf.chunks(3).collect();
    assert!(colours.len() > 10, "{} colours", colours.len());
    svg
}

#[test]
fn a_visitation_map_counts_visits_per_episode_and_marks_goal_and_start() {
    let s = darkroom();
    let task = s.test_tasks()[0];
    let TaskParams::Darkroom { goal } = s.tasks()[task] else {
        panic!()
    };
    let centre = 4 * 9 + 4;
    let goal_id = u32::from(goal[1]) * 9 + u32::from(goal[0]);
    // Early: two episodes wandering right of the centre; late: two straight to the goal.
    let traces = vec![
        trace(&s, task, 0, vec![centre, centre + 1, centre + 2], 0.0),
        trace(&s, task, 1, vec![centre, centre + 1, centre], 0.0),
        trace(&s, task, 8, vec![centre, goal_id, goal_id], 2.0),
        trace(&s, task, 9, vec![centre, goal_id, goal_id], 2.0),
        // A training task is not drawn.
        trace(&s, s.train_tasks()[0], 0, vec![centre, centre], 0.0),
    ];
    let maps = visitation::maps(&s, &traces, 2);
    assert_eq!(maps.len(), 1);
    let m = &maps[0];
    assert_eq!((m.width, m.height, m.task), (9, 9, task));
    assert_eq!(m.stem(), format!("visitation_test_task{task}"));
    // Per episode: the centre 1.5 times early (1 + 2 over two episodes), 1 time late.
    assert_eq!(m.early[centre as usize], 1.5);
    assert_eq!(m.early[centre as usize + 1], 1.0);
    assert_eq!(
        m.late[goal_id as usize],
        if goal_id == centre { 3.0 } else { 2.0 }
    );
    assert_eq!(m.early.iter().sum::<f64>(), 3.0);
    assert!(m.early_title.contains("episodes 1–2"), "{}", m.early_title);
    assert!(m.late_title.contains("episodes 9–10") && m.late_title.contains("mean return 2"));
    assert!(m.marks.contains(&(
        ((goal[0] as usize), (goal[1] as usize)),
        visitation::MarkKind::Goal
    )));
    assert!(m.marks.contains(&((4, 4), visitation::MarkKind::Start)));
    let svg = check_files(m);
    for needle in [
        "\nG\n</text>",
        "\nS\n</text>",
        "held-out task",
        "visits / episode",
        "goal",
    ] {
        assert!(svg.contains(needle), "no {needle} in the SVG");
    }
    // 81 cells, filled and outlined, in each of the two panels.
    assert!(svg.matches("<rect").count() >= 2 * 2 * 81);
}

#[test]
fn frozenlake_and_key_to_door_maps_mark_their_cells() {
    let fl = suite(include_str!("../../conf/task/frozenlake.yaml"));
    let t = fl.test_tasks()[0];
    let maps = visitation::maps(&fl, &[trace(&fl, t, 0, vec![0, 4, 5], 0.0)], 2);
    let holes = maps[0]
        .marks
        .iter()
        .filter(|(_, k)| *k == visitation::MarkKind::Hole)
        .count();
    assert_eq!(holes, 4);
    assert!(maps[0]
        .marks
        .contains(&((3, 3), visitation::MarkKind::Goal)));
    assert!(maps[0].late_title.contains("no episodes"));
    check_files(&maps[0]);

    let kd = suite(include_str!("../../conf/task/key_to_door.yaml"));
    let t = kd.test_tasks()[0];
    // has_key states (id ≥ 81) are drawn on the same cells: 0 and 81 are both (0, 0).
    let maps = visitation::maps(&kd, &[trace(&kd, t, 0, vec![0, 81, 82], 1.0)], 2);
    assert_eq!((maps[0].early[0], maps[0].early[1]), (2.0, 1.0));
    let svg = check_files(&maps[0]);
    assert!(svg.contains("\nK\n</text>") && svg.contains("\nD\n</text>"));
}

#[test]
fn no_maps_for_tasks_that_are_not_grids() {
    let s = suite(include_str!("../../conf/task/bandit.yaml"));
    let t = s.test_tasks()[0];
    assert!(visitation::maps(&s, &[trace(&s, t, 0, vec![0, 0], 1.0)], 2).is_empty());
    assert!(lander::pictures(&s, &[trace(&s, t, 0, vec![0, 0], 1.0)], 2).is_empty());
}

#[test]
fn source_curves_are_the_mean_and_standard_error_over_histories() {
    let a = [0.0f32, 2.0, 4.0];
    let b = [2.0f32, 4.0];
    let p = source_curves::mean_se(&[&a, &b], 1);
    assert_eq!(p.len(), 3);
    assert_eq!(p[0], (0.0, 1.0, 0.0, 2.0));
    assert_eq!(p[1], (1.0, 3.0, 2.0, 4.0));
    assert_eq!(p[2], (2.0, 4.0, 4.0, 4.0));
    // A trailing moving mean over two episodes.
    let p = source_curves::mean_se(&[&a], 2);
    assert_eq!(
        p.iter().map(|q| q.1).collect::<Vec<_>>(),
        vec![0.0, 1.0, 3.0]
    );
    assert_eq!(source_curves::window(400), 4);
    assert_eq!(source_curves::window(80), 1);

    let s = darkroom();
    let history = |task: usize, returns: Vec<f32>| {
        let mut h = LearningHistory::new(0);
        h.task_index = task as u32;
        h.split = s.split(task).unwrap();
        h.episode_returns = returns;
        h
    };
    let (train, test) = (s.train_tasks(), s.test_tasks());
    let histories = vec![
        history(train[0], vec![0.0, 1.0, 2.0]),
        history(train[1], vec![2.0, 3.0, 4.0]),
        history(test[0], vec![0.0, 0.0, 5.0]),
    ];
    let c = source_curves::chart(&s, &histories).unwrap();
    assert_eq!(c.curves.len(), 2);
    assert!(c.curves[0]
        .label
        .starts_with("training tasks (2 histories of 2 tasks)"));
    assert_eq!(c.curves[0].points[2].1, 3.0);
    assert_eq!(c.curves[1].points[2], (2.0, 5.0, 5.0, 5.0));
    let opt = f64::from(s.optimal_return(test[0]).unwrap());
    assert_eq!(c.curves[1].optimum, Some(opt));
    assert!(c.title.contains("q_learning") && c.title.contains("darkroom"));
    let svg = check_files(&c);
    assert!(svg.contains("held-out tasks") && svg.contains("optimum"));
    assert!(svg.contains("<polyline") || svg.contains("<path"));
    assert!(source_curves::chart(&s, &[]).is_none());
}

fn lander_trace(episode: usize, end: [f32; 8], terminated: bool, last_reward: f32) -> Trace {
    // A straight descent from the top centre, main engine every other step.
    let n = 30;
    let features: Vec<Vec<f32>> = (0..n)
        .map(|t| {
            let f = t as f32 / n as f32;
            vec![
                end[0] * f,
                1.4 + (end[1] - 1.4) * f,
                0.0,
                -0.3,
                end[4] * f,
                0.0,
                0.0,
                0.0,
            ]
        })
        .collect();
    let mut rewards = vec![-0.3; n];
    rewards[n - 1] = last_reward;
    Trace {
        task: 13,
        split: Split::Test,
        params: TaskParams::LunarLander {
            gravity: -11.0,
            wind_power: 2.0,
            turbulence_power: 0.1,
            pad_offset: 2,
            terrain_seed: 42,
        },
        episode,
        ret: rewards.iter().sum(),
        terminated,
        states: vec![],
        actions: (0..n as u32)
            .map(|t| [2, 0, 1, 3][t as usize % 4])
            .collect(),
        rewards,
        features,
        final_state: 0,
        final_features: end.to_vec(),
    }
}

#[test]
fn a_lander_picture_shows_terrain_path_engines_and_the_ending() {
    let crashed = lander_trace(0, [-0.5, 0.0, 0.0, 0.0, 0.8, 0.0, 0.0, 0.0], true, -100.0);
    // Pad offset +2 of 10 chunks: the pad is centred at x = 0.4 in observation units.
    let landed = lander_trace(5, [0.4, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0], true, 100.0);
    let beside = lander_trace(5, [-0.4, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0], true, 100.0);
    let off = lander_trace(5, [-1.02, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], true, -100.0);
    let flying = lander_trace(5, [0.1, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], false, -0.3);
    let pic = lander::picture(&[&crashed], &[&flying, &landed]).unwrap();
    let pad = (pic.scene.pad.0, pic.scene.pad.1);
    assert_eq!(Outcome::of(&crashed, pad), Outcome::Crashed);
    assert_eq!(Outcome::of(&landed, pad), Outcome::Landed { on_pad: true });
    assert_eq!(Outcome::of(&beside, pad), Outcome::Landed { on_pad: false });
    assert_eq!(Outcome::of(&off, pad), Outcome::FlewOff);
    assert_eq!(Outcome::of(&flying, pad), Outcome::Timeout);

    assert_eq!(pic.stem(), "lander_test_task13");
    assert_eq!(pic.flights.len(), 2);
    assert_eq!(
        pic.flights[0].path.len(),
        31,
        "every state and the final one"
    );
    assert!(pic.flights[0].heading.contains("crashed after 30 steps"));
    assert!(
        pic.flights[1].heading.contains("episode 6")
            && pic.flights[1].heading.contains("landed on the pad")
    );
    assert!(pic.title.contains("gravity -11.0") && pic.title.contains("pad +2"));
    let svg = check_files(&pic);
    // Terrain, outlines and marks are polygons; firings of the main engine are circles.
    assert!(
        svg.matches("<polygon").count() >= 2 * (1 + 6 + 14),
        "{}",
        svg.matches("<polygon").count()
    );
    assert!(svg.matches("<circle").count() >= 2 * 7);
    for needle in [
        "main engine",
        "left engine",
        "right engine",
        "landing pad",
        "crashed",
    ] {
        assert!(svg.contains(needle), "no {needle} in the SVG");
    }
    let dir = tempfile::tempdir().unwrap();
    let files = write(dir.path(), &pic.stem(), &pic).unwrap();
    assert_eq!(files.len(), 2);
    assert!(files
        .iter()
        .all(|f| std::fs::metadata(f).unwrap().len() > 1000));
}
