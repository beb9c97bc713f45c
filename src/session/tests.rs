//! Session scenarios, numbered after QuickFIX's acceptance tests
//! (`test/definitions/server/fix44/*.def`); expected outputs are the ones those files give.
//! FIX 4.2 variants run the same scripts with the BeginString replaced. Orders carry OrderQty
//! <38>, which our dictionary requires (QuickFIX's scripts omit it).

use super::script::{acceptor, run, Runner};
use super::{DisconnectReason, MessageStore, Role, SessionConfig, SessionState};
use crate::fix::BeginString::{self, Fix42, Fix44};
use crate::fix::Message;
use crate::model::Nanos;

const LOGON: &str = "
    I8=FIX.4.4|35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=30
    E8=FIX.4.4|35=A|34=1|49=ISLD|52=<TIME>|56=TW|98=0|108=30
";

/// Runs `body` after a logon, for FIX 4.4 and FIX 4.2.
fn both(body: &str) {
    let script = format!("{LOGON}{body}");
    run(acceptor(Fix44), &script);
    run(acceptor(Fix42), &script.replace("8=FIX.4.4", "8=FIX.4.2"));
}

fn in44(body: &str) {
    run(acceptor(Fix44), &format!("{LOGON}{body}"));
}

const ORDER: &str = "11=ID|21=3|38=100|40=1|54=1|55=INTC|60=<TIME>";

fn order(seq: u64, extra: &str) -> String {
    format!("I8=FIX.4.4|35=D|34={seq}|49=TW|52=<TIME>|56=ISLD|{extra}{ORDER}\n")
}

fn echo(seq: u64, extra: &str) -> String {
    format!("E8=FIX.4.4|35=D|34={seq}|49=ISLD|52=<TIME>|56=TW|{extra}{ORDER}\n")
}

fn hb_in(seq: u64) -> String {
    format!("I8=FIX.4.4|35=0|34={seq}|49=TW|52=<TIME>|56=ISLD\n")
}

fn logout_exchange(their: u64, ours: u64) -> String {
    format!(
        "I8=FIX.4.4|35=5|34={their}|49=TW|52=<TIME>|56=ISLD
         E8=FIX.4.4|35=5|34={ours}|49=ISLD|52=<TIME>|56=TW
         DISCONNECT LogoutReceived\n"
    )
}

// ------------------------------------------------------------------------------------ 1: logon

#[test]
fn s1a_valid_logon_with_correct_msg_seq_num() {
    both("IDISCONNECT");
}

#[test]
fn s1a_valid_logon_msg_seq_num_too_high() {
    for bs in [Fix44, Fix42] {
        let s = "
            I8=FIX.4.4|35=A|34=5|49=TW|52=<TIME>|56=ISLD|98=0|108=30
            E8=FIX.4.4|35=A|34=1|49=ISLD|52=<TIME>|56=TW|98=0|108=30
            E8=FIX.4.4|35=2|34=2|49=ISLD|52=<TIME>|56=TW|7=1|16=0
            I8=FIX.4.4|35=5|34=6|49=TW|52=<TIME>|56=ISLD
            E8=FIX.4.4|35=5|34=3|49=ISLD|52=<TIME>|56=TW
            DISCONNECT LogoutReceived";
        let s = if bs == Fix42 {
            s.replace("FIX.4.4", "FIX.4.2")
        } else {
            s.to_string()
        };
        run(acceptor(bs), &s);
    }
}

#[test]
fn s1a_logon_gap_filled_then_queued_logon_is_skipped() {
    in44("");
    run(
        acceptor(Fix44),
        "
        I8=FIX.4.4|35=A|34=3|49=TW|52=<TIME>|56=ISLD|98=0|108=30
        E8=FIX.4.4|35=A|34=1|49=ISLD|52=<TIME>|56=TW|98=0|108=30
        E8=FIX.4.4|35=2|34=2|49=ISLD|52=<TIME>|56=TW|7=1|16=0
        I8=FIX.4.4|35=4|34=1|49=TW|52=<TIME>|56=ISLD|43=Y|122=<TIME>|36=3|123=Y
        SEQ 3 4
        I8=FIX.4.4|35=1|34=4|49=TW|52=<TIME>|56=ISLD|112=X
        E8=FIX.4.4|35=0|34=3|49=ISLD|52=<TIME>|56=TW|112=X
        ",
    );
}

#[test]
fn s1b_duplicate_identity_second_connection_refused() {
    in44(
        "I28=FIX.4.4|35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=30
         NOTHING
         SEQ 2 2",
    );
}

#[test]
fn s1c_invalid_sender_or_target_comp_id_disconnects() {
    run(
        acceptor(Fix44),
        "I8=FIX.4.4|35=A|34=1|49=WT|52=<TIME>|56=ISLD|98=0|108=30\nDISCONNECT CompIdProblem",
    );
    run(
        acceptor(Fix44),
        "I8=FIX.4.4|35=A|34=1|49=TW|52=<TIME>|56=DLSI|98=0|108=30\nDISCONNECT CompIdProblem",
    );
}

#[test]
fn s1d_invalid_logon_bad_sending_time_disconnects() {
    run(
        acceptor(Fix44),
        "I8=FIX.4.4|35=A|34=1|49=TW|52=20010101-00:00:00|56=ISLD|98=0|108=30\nDISCONNECT BadSendingTime",
    );
}

#[test]
fn s1d_invalid_logon_length_disconnects() {
    run(
        acceptor(Fix44),
        "I8=FIX.4.4|9=40|35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=30\nDISCONNECT",
    );
}

#[test]
fn s1d_invalid_logon_wrong_begin_string_disconnects() {
    run(
        acceptor(Fix44),
        "I8=FIX.3.9|35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=30\nDISCONNECT BadBeginString",
    );
    run(
        acceptor(Fix42),
        "I8=FIX.4.4|35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=30\nDISCONNECT BadBeginString",
    );
}

#[test]
fn s1e_not_logon_message_disconnects() {
    run(
        acceptor(Fix44),
        "I8=FIX.4.4|35=0|34=1|49=TW|52=<TIME>|56=ISLD\nDISCONNECT NotLogon",
    );
}

#[test]
fn logon_seq_too_low_sends_logout_and_disconnects() {
    let cfg = SessionConfig {
        reset_on_disconnect: false,
        ..acceptor(Fix44)
    };
    run(
        cfg,
        &format!(
            "{LOGON}{}{}
            CONNECT
            I8=FIX.4.4|35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=30
            E8=FIX.4.4|35=5|34=3|49=ISLD|52=<TIME>|56=TW|58=MsgSeqNum too low, expecting 4 but received 1
            DISCONNECT SeqTooLow",
            hb_in(2),
            logout_exchange(3, 2)
        ),
    );
}

#[test]
fn logon_heart_bt_int_out_of_range_is_refused() {
    run(
        acceptor(Fix44),
        "I8=FIX.4.4|35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=0
         E8=FIX.4.4|35=5|34=1|49=ISLD|52=<TIME>|56=TW|58=HeartBtInt out of range
         DISCONNECT BadHeartBtInt",
    );
}

#[test]
fn second_logon_without_reset_is_rejected_then_logged_out() {
    in44(
        "I8=FIX.4.4|35=A|34=2|49=TW|52=<TIME>|56=ISLD|98=0|108=30
         E8=FIX.4.4|35=3|34=2|49=ISLD|52=<TIME>|56=TW|45=2|372=A|373=99|58=Logon not accepted on an established session
         E8=FIX.4.4|35=5|34=3|49=ISLD|52=<TIME>|56=TW|58=Logon not accepted on an established session
         DISCONNECT UnexpectedLogon",
    );
}

#[test]
fn mid_session_logon_with_reset_seq_num_flag_resets_both_sides() {
    let mut s = String::new();
    for seq in 2..=9 {
        s += &hb_in(seq);
    }
    s += "
        I8=FIX.4.4|35=1|34=10|49=TW|52=<TIME>|56=ISLD|112=1
        E8=FIX.4.4|35=0|34=2|49=ISLD|52=<TIME>|56=TW|112=1
        I8=FIX.4.4|35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=30|141=Y
        E8=FIX.4.4|35=A|34=1|49=ISLD|52=<TIME>|56=TW|98=0|108=30|141=Y
        I8=FIX.4.4|35=1|34=2|49=TW|52=<TIME>|56=ISLD|112=1
        E8=FIX.4.4|35=0|34=2|49=ISLD|52=<TIME>|56=TW|112=1
    ";
    s += &logout_exchange(3, 3);
    in44(&s);
}

#[test]
fn logon_with_reset_seq_num_flag_answers_with_it() {
    let cfg = SessionConfig {
        reset_on_disconnect: false,
        ..acceptor(Fix44)
    };
    run(
        cfg,
        &format!(
            "{LOGON}{}{}
            CONNECT
            I8=FIX.4.4|35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=30|141=Y
            E8=FIX.4.4|35=A|34=1|49=ISLD|52=<TIME>|56=TW|98=0|108=30|141=Y
            SEQ 2 2",
            hb_in(2),
            logout_exchange(3, 2)
        ),
    );
}

// ------------------------------------------------------------------------ 2: MsgSeqNum, header

#[test]
fn s2a_msg_seq_num_correct() {
    both(&format!(
        "{}{}{}{}{}",
        hb_in(2),
        hb_in(3),
        hb_in(4),
        hb_in(5),
        logout_exchange(6, 2)
    ));
}

#[test]
fn s2b_msg_seq_num_too_high() {
    let mut s = format!("{}{}{}{}", hb_in(2), hb_in(3), hb_in(4), hb_in(10));
    s += "E8=FIX.4.4|35=2|34=2|49=ISLD|52=<TIME>|56=TW|7=5|16=0\n";
    for seq in 5..=9 {
        s += &hb_in(seq);
    }
    s += "SEQ 3 11\n";
    s += &logout_exchange(11, 3);
    both(&s);
}

#[test]
fn s2b_no_second_resend_request_for_the_same_gap() {
    in44(&format!(
        "{}E8=FIX.4.4|35=2|34=2|49=ISLD|52=<TIME>|56=TW|7=2|16=0\n{}{}NOTHING\n{}{}{}SEQ 3 8",
        hb_in(5),
        hb_in(6),
        hb_in(7),
        hb_in(2),
        hb_in(3),
        hb_in(4),
    ));
}

#[test]
fn s2c_msg_seq_num_too_low() {
    both(&format!(
        "{}{}{}{}E8=FIX.4.4|35=5|34=2|49=ISLD|52=<TIME>|56=TW|58=MsgSeqNum too low, expecting 5 but received 2
         DISCONNECT SeqTooLow",
        hb_in(2),
        hb_in(3),
        hb_in(4),
        hb_in(2)
    ));
}

#[test]
fn s2d_garbled_message_is_ignored() {
    let s = format!(
        "I8=FIX.4.4|9=52|35=0|34=2|4garbled9=TW|52=<TIME>|56=ISLD|10=0
         {}
         I8=FIX.4.4|9=81|35=D|34=3|49garbled=TW|52=<TIME>|56=ISLD|11=ID|21=3|40=1|54=1|55=INTC|10=0
         {}
         E8=FIX.4.4|35=2|34=2|49=ISLD|52=<TIME>|56=TW|7=3|16=0
         {}{}{}{}",
        hb_in(2),
        hb_in(4),
        order(3, ""),
        echo(3, ""),
        "",
        logout_exchange(5, 4)
    );
    both(&s);
}

#[test]
fn s2e_poss_dup_already_received_is_ignored() {
    both(&format!(
        "{}I8=FIX.4.4|35=0|34=2|49=TW|52=<TIME>|122=<TIME>|56=ISLD|43=Y|112=<TIME>\n{}{}",
        hb_in(2),
        hb_in(3),
        logout_exchange(4, 2)
    ));
}

#[test]
fn s2e_poss_dup_not_received_is_processed() {
    both(&format!(
        "{}I8=FIX.4.4|35=0|34=2|49=TW|52=<TIME>|122=<TIME>|56=ISLD|43=Y
         I8=FIX.4.4|35=0|34=3|49=TW|52=<TIME>|122=<TIME>|56=ISLD|43=Y
         {}",
        hb_in(2),
        logout_exchange(4, 2)
    ));
}

#[test]
fn s2f_poss_dup_orig_sending_time_too_high() {
    both(&format!(
        "{}{}{}{}{}
         E8=FIX.4.4|35=3|34=4|49=ISLD|52=<TIME>|56=TW|45=2|58=SendingTime accuracy problem|372=D|373=10
         E8=FIX.4.4|35=5|34=5|49=ISLD|52=<TIME>|56=TW
         I8=FIX.4.4|35=5|34=4|49=TW|52=<TIME>|56=ISLD
         DISCONNECT LogoutReplyReceived",
        order(2, ""),
        echo(2, ""),
        order(3, ""),
        echo(3, ""),
        order(2, "43=Y|122=<TIME+10>|"),
    ));
}

#[test]
fn s2g_poss_dup_without_orig_sending_time() {
    both(&format!(
        "{}{}{}{}{}
         E8=FIX.4.4|35=3|34=4|49=ISLD|52=<TIME>|56=TW|45=2|58=Required tag missing|371=122|372=D|373=1
         I8=FIX.4.4|35=1|34=4|49=TW|52=<TIME>|56=ISLD|112=HELLO
         E8=FIX.4.4|35=0|34=5|49=ISLD|52=<TIME>|56=TW|112=HELLO
         {}",
        order(2, ""),
        echo(2, ""),
        order(3, ""),
        echo(3, ""),
        order(2, "43=Y|"),
        logout_exchange(5, 6)
    ));
}

#[test]
fn s2i_begin_string_value_unexpected() {
    let first = "
        I8=FIX.4.1|35=1|34=2|49=TW|52=<TIME>|56=ISLD|112=id
        E8=FIX.4.4|35=5|34=2|49=ISLD|52=<TIME>|56=TW|58=Incorrect BeginString
    ";
    in44(&format!(
        "{first}
         I8=FIX.4.4|35=5|34=3|49=TW|52=<TIME>|56=ISLD
         DISCONNECT LogoutReplyReceived
         CONNECT
         {LOGON}
         {first}
         T+1990
         NOTHING
         DISCONNECT LogoutTimeout"
    ));
}

#[test]
fn s2k_comp_id_does_not_match_profile() {
    for (sender, target) in [("WT", "ISLD"), ("TW", "DLSI"), ("WT", "DLSI")] {
        in44(&format!(
            "I8=FIX.4.4|35=D|34=2|49={sender}|52=<TIME>|56={target}|{ORDER}
             E8=FIX.4.4|35=3|34=2|49=ISLD|52=<TIME>|56=TW|45=2|58=CompID problem|372=D|373=9
             E8=FIX.4.4|35=5|34=3|49=ISLD|52=<TIME>|56=TW
             I8=FIX.4.4|35=5|34=3|49=TW|52=<TIME>|56=ISLD
             DISCONNECT LogoutReplyReceived"
        ));
    }
}

#[test]
fn s2m_body_length_value_not_correct() {
    both(&format!(
        "I8=FIX.4.4|9=30|35=D|34=2|49=TW|52=<TIME>|56=ISLD|{ORDER}
         {}
         E8=FIX.4.4|35=2|34=2|49=ISLD|52=<TIME>|56=TW|7=2|16=0
         {}{}{}
         I8=FIX.4.4|9=111|35=D|34=4|49=TW|52=<TIME>|56=ISLD|{ORDER}
         {}
         SEQ 5 4
         {}{}{}{}{}",
        order(3, ""),
        order(2, "122=<TIME>|"),
        echo(3, ""),
        echo(4, ""),
        order(5, ""),
        order(4, ""),
        order(5, ""),
        echo(5, ""),
        echo(6, ""),
        logout_exchange(7, 7)
    ));
}

#[test]
fn s2o_sending_time_value_out_of_range() {
    for offset in ["-121", "+121"] {
        both(&format!(
            "I8=FIX.4.4|35=0|34=2|49=TW|52=<TIME{offset}>|56=ISLD
             E8=FIX.4.4|35=3|34=2|49=ISLD|52=<TIME>|56=TW|45=2|58=SendingTime accuracy problem|372=0|373=10
             E8=FIX.4.4|35=5|34=3|49=ISLD|52=<TIME>|56=TW
             I8=FIX.4.4|35=5|34=3|49=TW|52=<TIME>|56=ISLD
             DISCONNECT LogoutReplyReceived"
        ));
    }
}

#[test]
fn sending_time_inside_the_window_is_accepted() {
    in44(&format!(
        "I8=FIX.4.4|35=0|34=2|49=TW|52=<TIME-119>|56=ISLD\nNOTHING\n{}",
        logout_exchange(3, 2)
    ));
}

#[test]
fn s2q_msg_type_not_valid() {
    both(&format!(
        "I8=FIX.4.4|35=*|34=2|49=TW|52=<TIME>|56=ISLD
         E8=FIX.4.4|35=3|34=2|49=ISLD|52=<TIME>|56=TW|45=2|58=Invalid MsgType|372=*|373=11
         {}",
        logout_exchange(3, 3)
    ));
}

#[test]
fn s2r_unregistered_msg_type() {
    // A type the dictionary knows but the gateway does not take: BusinessMessageReject 380=3.
    let body = "37=id|17=id|150=0|39=0|55=WLRI|54=1|151=100|14=0|6=0.0";
    let s = |exec_trans_type: &str| {
        format!(
            "{LOGON}I8=FIX.4.4|35=8|34=2|49=TW|52=<TIME>|56=ISLD|{exec_trans_type}{body}
             E8=FIX.4.4|35=j|34=2|49=ISLD|52=<TIME>|56=TW|45=2|58=Unsupported Message Type|372=8|380=3
             {}",
            logout_exchange(3, 3)
        )
    };
    run(acceptor(Fix44), &s(""));
    run(acceptor(Fix42), &s("20=0|").replace("FIX.4.4", "FIX.4.2"));
}

#[test]
fn s2t_first_three_fields_out_of_order() {
    both(&format!(
        "I35=0|8=FIX.4.4|9=29|34=2|49=TW|52=<TIME>|56=ISLD|10=121
         I8=FIX.4.4|35=1|34=2|49=TW|52=<TIME>|56=ISLD|112=HELLO
         E8=FIX.4.4|35=0|34=2|49=ISLD|52=<TIME>|56=TW|112=HELLO
         I8=FIX.4.4|34=3|35=0|49=TW|52=<TIME>|56=ISLD
         I8=FIX.4.4|35=1|34=3|49=TW|52=<TIME>|56=ISLD|112=HELLO
         E8=FIX.4.4|35=0|34=3|49=ISLD|52=<TIME>|56=TW|112=HELLO
         {}",
        logout_exchange(4, 4)
    ));
}

// -------------------------------------------------------------------------- 3: garbled frames

#[test]
fn s3b_invalid_checksum_is_ignored() {
    both(&format!(
        "I8=FIX.4.4|35=0|34=2|49=TW|52=<TIME>|56=ISLD|10=256
         {}
         I8=FIX.4.4|35=D|34=3|49=TW|52=<TIME>|56=ISLD|11=ID|21=3|40=1|54=1|55=INTC|10=256
         {}
         E8=FIX.4.4|35=2|34=2|49=ISLD|52=<TIME>|56=TW|7=3|16=0
         {}{}{}",
        hb_in(2),
        hb_in(4),
        order(3, ""),
        echo(3, ""),
        logout_exchange(5, 4)
    ));
}

#[test]
fn s3c_garbled_message_then_resend() {
    both(&format!(
        "I8=FIX.4.4|9=52|35=0|34=2|4garbled9=TW|52=<TIME>|56=ISLD|10=0
         {}
         I8=FIX.4.4|9=81|35=D|34=3|49garbled=TW|52=<TIME>|56=ISLD|11=ID|21=3|40=1|54=1|55=INTC|10=0
         {}
         E8=FIX.4.4|35=2|34=2|49=ISLD|52=<TIME>|56=TW|7=3|16=0
         SEQ 3 3",
        hb_in(2),
        hb_in(4),
    ));
}

#[test]
fn garbled_frames_are_counted_and_do_not_consume_seq_nums() {
    let r = run(
        acceptor(Fix44),
        &format!(
            "{LOGON}I8=FIX.4.4|35=0|34=2|49=TW|52=<TIME>|56=ISLD|10=256\nSEQ 2 2\n{}",
            hb_in(2)
        ),
    );
    assert_eq!(r.session.counters().garbled, 1);
}

// ------------------------------------------------------------------------ 4, 6: heartbeats

#[test]
fn s4a_no_data_sent_during_heart_bt_int() {
    run(
        acceptor(Fix44),
        "I8=FIX.4.4|35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=3
         E8=FIX.4.4|35=A|34=1|49=ISLD|52=<TIME>|56=TW|98=0|108=3
         E8=FIX.4.4|35=0|34=2|49=ISLD|52=<TIME>|56=TW
         I8=FIX.4.4|35=0|34=2|49=TW|52=<TIME>|56=ISLD
         E8=FIX.4.4|35=0|34=3|49=ISLD|52=<TIME>|56=TW
         I8=FIX.4.4|35=0|34=3|49=TW|52=<TIME>|56=ISLD
         I8=FIX.4.4|35=5|34=4|49=TW|52=<TIME>|56=ISLD
         E8=FIX.4.4|35=5|34=4|49=ISLD|52=<TIME>|56=TW
         DISCONNECT",
    );
}

#[test]
fn s4b_received_test_request() {
    both(
        "I8=FIX.4.4|35=1|34=2|49=TW|52=<TIME>|56=ISLD|112=HELLO
         E8=FIX.4.4|35=0|34=2|49=ISLD|52=<TIME>|56=TW|112=HELLO
         I8=FIX.4.4|35=5|34=3|49=TW|52=<TIME>|56=ISLD
         E8=FIX.4.4|35=5|34=3|49=ISLD|52=<TIME>|56=TW
         DISCONNECT",
    );
}

#[test]
fn s6_send_test_request() {
    run(
        acceptor(Fix44),
        "I8=FIX.4.4|35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=3
         E8=FIX.4.4|35=A|34=1|49=ISLD|52=<TIME>|56=TW|98=0|108=3
         E8=FIX.4.4|35=0|34=2|49=ISLD|52=<TIME>|56=TW
         I8=FIX.4.4|35=0|34=2|49=TW|52=<TIME>|56=ISLD
         E8=FIX.4.4|35=0|34=3|49=ISLD|52=<TIME>|56=TW
         E8=FIX.4.4|35=1|34=4|49=ISLD|52=<TIME>|56=TW|112=TEST
         I8=FIX.4.4|35=0|34=3|49=TW|52=<TIME>|56=ISLD|112=TEST
         E8=FIX.4.4|35=0|34=5|49=ISLD|52=<TIME>|56=TW
         I8=FIX.4.4|35=0|34=4|49=TW|52=<TIME>|56=ISLD
         E8=FIX.4.4|35=0|34=6|49=ISLD|52=<TIME>|56=TW
         E8=FIX.4.4|35=1|34=7|49=ISLD|52=<TIME>|56=TW|112=TEST
         DISCONNECT HeartbeatTimeout",
    );
}

#[test]
fn heartbeat_loss_timing_is_1_2_then_2_4_times_heart_bt_int() {
    in44(
        "T+29990
         NOTHING
         T+10
         E8=FIX.4.4|35=0|34=2|49=ISLD|52=<TIME>|56=TW
         T+5980
         NOTHING
         T+10
         E8=FIX.4.4|35=1|34=3|49=ISLD|52=<TIME>|56=TW|112=TEST
         T+35990
         NOTHING
         T+10
         DISCONNECT HeartbeatTimeout",
    );
}

// ---------------------------------------------------------------------------- 7, 8: resend

#[test]
fn s7_receive_reject_message() {
    both(&format!(
        "I8=FIX.4.4|35=3|34=2|49=TW|52=<TIME>|56=ISLD|45=1\n{}",
        logout_exchange(3, 2)
    ));
}

fn test_request(seq: u64, ours: u64) -> String {
    format!(
        "I8=FIX.4.4|35=1|34={seq}|49=TW|52=<TIME>|56=ISLD|112=HELLO
         E8=FIX.4.4|35=0|34={ours}|49=ISLD|52=<TIME>|56=TW|112=HELLO\n"
    )
}

fn resent(seq: u64, sym: &str) -> String {
    format!(
        "E8=FIX.4.4|35=D|34={seq}|43=Y|49=ISLD|52=<TIME>|56=TW|122=<TIME>|11=ID|21=3|38=100|40=1|54=1|55={sym}|60=<TIME>\n"
    )
}

fn gap_fill(seq: u64, new: u64) -> String {
    format!("E8=FIX.4.4|35=4|34={seq}|43=Y|49=ISLD|52=<TIME>|56=TW|122=<TIME>|36={new}|123=Y\n")
}

fn resend_request(seq: u64, begin: u64, end: u64) -> String {
    format!("I8=FIX.4.4|35=2|34={seq}|49=TW|52=<TIME>|56=ISLD|7={begin}|16={end}\n")
}

fn order_sym(seq: u64, sym: &str) -> String {
    format!(
        "I8=FIX.4.4|35=D|34={seq}|49=TW|52=<TIME>|56=ISLD|11=ID|21=3|38=100|40=1|54=1|55={sym}|60=<TIME>
         E8=FIX.4.4|35=D|34={seq}|49=ISLD|52=<TIME>|56=TW|11=ID|21=3|38=100|40=1|54=1|55={sym}|60=<TIME>\n"
    )
}

#[test]
fn s8_only_admin_messages() {
    both(&format!(
        "{}{}{}{}{}{}{}{}{}",
        test_request(2, 2),
        test_request(3, 3),
        test_request(4, 4),
        resend_request(5, 1, 4),
        gap_fill(1, 5),
        test_request(6, 5),
        resend_request(7, 1, 0),
        gap_fill(1, 6),
        logout_exchange(8, 6)
    ));
}

#[test]
fn s8_only_application_messages() {
    both(&format!(
        "{}{}{}{}{}{}{}{}{}{}{}{}{}{}{}",
        order_sym(2, "INTC"),
        order_sym(3, "CDG"),
        order_sym(4, "IVP"),
        resend_request(5, 2, 4),
        resent(2, "INTC"),
        resent(3, "CDG"),
        resent(4, "IVP"),
        test_request(6, 5),
        resend_request(7, 2, 0),
        resent(2, "INTC"),
        resent(3, "CDG"),
        resent(4, "IVP"),
        gap_fill(5, 6),
        logout_exchange(8, 6),
        ""
    ));
}

#[test]
fn s8_admin_and_application_messages() {
    let mut s = String::new();
    s += &test_request(2, 2);
    s += &test_request(3, 3);
    s += &test_request(4, 4);
    s += &order_sym(5, "INTC");
    s += &order_sym(6, "CDG");
    s += &test_request(7, 7);
    s += &test_request(8, 8);
    s += &order_sym(9, "IVP");
    s += &resend_request(10, 2, 4);
    s += &gap_fill(2, 5);
    s += &resend_request(11, 2, 6);
    s += &(gap_fill(2, 5) + &resent(5, "INTC") + &resent(6, "CDG"));
    s += &resend_request(12, 2, 8);
    s += &(gap_fill(2, 5) + &resent(5, "INTC") + &resent(6, "CDG") + &gap_fill(7, 9));
    for (seq, end) in [(13, 9), (14, 0)] {
        s += &resend_request(seq, 2, end);
        s += &(gap_fill(2, 5) + &resent(5, "INTC") + &resent(6, "CDG") + &gap_fill(7, 9));
        s += &resent(9, "IVP");
    }
    s += &test_request(15, 10);
    s += &logout_exchange(16, 11);
    both(&s);
}

#[test]
fn resend_end_999999_means_infinity_in_fix42_only() {
    let s = format!(
        "{}{}{}{}",
        order_sym(2, "INTC"),
        resend_request(3, 2, 999_999),
        resent(2, "INTC"),
        logout_exchange(4, 3)
    );
    run(
        acceptor(Fix42),
        &format!("{LOGON}{s}").replace("FIX.4.4", "FIX.4.2"),
    );
}

// ------------------------------------------------------------------- 10, 11: SequenceReset

#[test]
fn s10_msg_seq_num_equal() {
    both(&format!(
        "I8=FIX.4.4|35=4|34=2|49=TW|52=<TIME>|56=ISLD|36=20|123=Y
         I8=FIX.4.4|35=1|34=20|49=TW|52=<TIME>|56=ISLD|112=HELLO
         E8=FIX.4.4|35=0|34=2|49=ISLD|52=<TIME>|56=TW|112=HELLO
         {}",
        logout_exchange(21, 3)
    ));
}

#[test]
fn s10_msg_seq_num_greater() {
    both(&format!(
        "I8=FIX.4.4|35=4|34=10|49=TW|52=<TIME>|56=ISLD|36=20|123=Y
         I8=FIX.4.4|35=1|34=20|49=TW|52=<TIME>|56=ISLD|112=HELLO
         E8=FIX.4.4|35=2|34=2|49=ISLD|52=<TIME>|56=TW|7=2|16=0
         NOTHING
         {}",
        logout_exchange(2, 3)
    ));
}

#[test]
fn s10_msg_seq_num_less() {
    both(
        "I8=FIX.4.4|35=4|34=1|49=TW|52=<TIME>|56=ISLD|43=Y|122=<TIME-1>|36=20|123=Y
         I8=FIX.4.4|35=1|34=2|49=TW|52=<TIME>|56=ISLD|112=HELLO
         E8=FIX.4.4|35=0|34=2|49=ISLD|52=<TIME>|56=TW|112=HELLO
         I8=FIX.4.4|35=4|34=1|49=TW|52=<TIME>|56=ISLD|36=20|123=Y
         E8=FIX.4.4|35=5|34=3|49=ISLD|52=<TIME>|56=TW|58=MsgSeqNum too low, expecting 3 but received 1
         DISCONNECT SeqTooLow",
    );
}

#[test]
fn s11a_new_seq_no_greater() {
    both(&format!(
        "I8=FIX.4.4|35=4|34=0|49=TW|52=<TIME>|56=ISLD|36=25
         I8=FIX.4.4|35=1|34=25|49=TW|52=<TIME>|56=ISLD|112=HELLO
         E8=FIX.4.4|35=0|34=2|49=ISLD|52=<TIME>|56=TW|112=HELLO
         I8=FIX.4.4|35=4|34=0|49=TW|52=<TIME>|56=ISLD|36=50|123=N
         I8=FIX.4.4|35=1|34=50|49=TW|52=<TIME>|56=ISLD|112=HELLO
         E8=FIX.4.4|35=0|34=3|49=ISLD|52=<TIME>|56=TW|112=HELLO
         {}",
        logout_exchange(51, 4)
    ));
}

#[test]
fn s11b_new_seq_no_equal() {
    both(&format!(
        "I8=FIX.4.4|35=4|34=0|49=TW|52=<TIME>|56=ISLD|36=2
         I8=FIX.4.4|35=1|34=2|49=TW|52=<TIME>|56=ISLD|112=HELLO
         E8=FIX.4.4|35=0|34=2|49=ISLD|52=<TIME>|56=TW|112=HELLO
         I8=FIX.4.4|35=4|34=0|49=TW|52=<TIME>|56=ISLD|36=4|123=N
         I8=FIX.4.4|35=1|34=4|49=TW|52=<TIME>|56=ISLD|112=HELLO
         E8=FIX.4.4|35=0|34=3|49=ISLD|52=<TIME>|56=TW|112=HELLO
         {}",
        logout_exchange(5, 4)
    ));
}

#[test]
fn s11c_new_seq_no_less() {
    both(&format!(
        "I8=FIX.4.4|35=4|34=0|49=TW|52=<TIME>|56=ISLD|36=1
         E8=FIX.4.4|35=3|34=2|49=ISLD|52=<TIME>|56=TW|45=0|58=Value is incorrect (out of range) for this tag|372=4|373=5
         I8=FIX.4.4|35=1|34=2|49=TW|52=<TIME>|56=ISLD|112=HELLO
         E8=FIX.4.4|35=0|34=3|49=ISLD|52=<TIME>|56=TW|112=HELLO
         I8=FIX.4.4|35=4|34=0|49=TW|52=<TIME>|56=ISLD|36=1|123=N
         E8=FIX.4.4|35=3|34=4|49=ISLD|52=<TIME>|56=TW|45=0|58=Value is incorrect (out of range) for this tag|372=4|373=5
         I8=FIX.4.4|35=1|34=3|49=TW|52=<TIME>|56=ISLD|112=HELLO
         E8=FIX.4.4|35=0|34=5|49=ISLD|52=<TIME>|56=TW|112=HELLO
         {}",
        logout_exchange(4, 6)
    ));
}

// ------------------------------------------------------------------------------ 13: logout

#[test]
fn s13b_unsolicited_logout_message() {
    both(&logout_exchange(2, 2));
}

#[test]
fn our_logout_ends_on_the_reply() {
    in44(
        "LOGOUT
         E8=FIX.4.4|35=5|34=2|49=ISLD|52=<TIME>|56=TW|58=bye
         I8=FIX.4.4|35=5|34=2|49=TW|52=<TIME>|56=ISLD
         DISCONNECT LogoutReplyReceived",
    );
}

#[test]
fn our_logout_times_out() {
    in44(
        "LOGOUT
         E8=FIX.4.4|35=5|34=2|49=ISLD|52=<TIME>|56=TW|58=bye
         T+1990
         NOTHING
         T+10
         DISCONNECT LogoutTimeout",
    );
}

#[test]
fn reset_on_logout_starts_the_next_connection_at_one() {
    let cfg = SessionConfig {
        reset_on_logout: true,
        ..acceptor(Fix44)
    };
    run(cfg, &format!("{LOGON}{}SEQ 1 1", logout_exchange(2, 2)));
    let cfg = SessionConfig {
        reset_on_disconnect: false,
        ..acceptor(Fix44)
    };
    run(cfg, &format!("{LOGON}{}SEQ 3 3", logout_exchange(2, 2)));
}

// --------------------------------------------------------------- 14: validation (dictionary)

#[test]
fn s14a_bad_field() {
    let mut s = String::new();
    for (seq, tag) in [(2, "999"), (3, "0"), (4, "-1"), (5, "5000")] {
        s += &format!(
            "I8=FIX.4.4|35=0|34={seq}|49=TW|52=<TIME>|56=ISLD|{tag}=HI
             E8=FIX.4.4|35=3|34={seq}|49=ISLD|52=<TIME>|56=TW|45={seq}|58=<ANY>|371={tag}|372=0|373=0\n"
        );
    }
    s += &logout_exchange(6, 6);
    both(&s);
}

#[test]
fn s14b_required_field_missing() {
    both(&format!(
        "I8=FIX.4.4|35=0|34=2|49=TW|52=<TIME>
         E8=FIX.4.4|35=3|34=2|49=ISLD|52=<TIME>|56=TW|45=2|58=<ANY>|371=56|372=0|373=1
         I8=FIX.4.4|35=D|49=TW|34=3|56=ISLD|52=<TIME>|40=1|38=100|60=<TIME>|54=1|21=3|11=id
         E8=FIX.4.4|35=3|34=3|49=ISLD|52=<TIME>|56=TW|45=3|58=<ANY>|371=55|372=D|373=1
         {}",
        logout_exchange(4, 4)
    ));
}

#[test]
fn s14c_tag_not_defined_for_msg_type() {
    both(&format!(
        "I8=FIX.4.4|35=0|34=2|49=TW|52=<TIME>|56=ISLD|55=MSFT
         E8=FIX.4.4|35=3|34=2|49=ISLD|52=<TIME>|56=TW|45=2|58=<ANY>|371=55|372=0|373=2
         {}",
        logout_exchange(3, 3)
    ));
}

#[test]
fn s14d_tag_specified_without_value() {
    both(&format!(
        "I8=FIX.4.4|35=0|34=2|49=TW|52=<TIME>|56=
         E8=FIX.4.4|35=3|34=2|49=ISLD|52=<TIME>|56=TW|45=2|58=<ANY>|371=56|372=0|373=4
         {}",
        logout_exchange(3, 3)
    ));
}

#[test]
fn s14e_incorrect_enum_value() {
    both(&format!(
        "I8=FIX.4.4|35=D|34=2|49=TW|52=<TIME>|56=ISLD|11=ID|21=4|40=1|54=1|38=002000.00|55=INTC|60=<TIME>
         E8=FIX.4.4|35=3|34=2|49=ISLD|52=<TIME>|56=TW|45=2|58=<ANY>|371=21|372=D|373=5
         I8=FIX.4.4|35=D|34=3|49=TW|52=<TIME>|56=ISLD|11=ID|21=1|40=1|54=1|38=002000.00|55=INTC|60=<TIME>|167=BOO
         E8=FIX.4.4|35=3|34=3|49=ISLD|52=<TIME>|56=TW|45=3|58=<ANY>|371=167|372=D|373=5
         I8=FIX.4.4|35=D|34=4|49=TW|52=<TIME>|56=ISLD|11=ID|21=1|40=1|54=1|38=002000.00|55=INTC|60=<TIME>|167=CS
         E8=FIX.4.4|35=D|34=4|49=ISLD|52=<TIME>|56=TW|11=ID|21=1|40=1|54=1|38=002000.00|55=INTC|60=<TIME>|167=CS
         {}",
        logout_exchange(5, 5)
    ));
}

#[test]
fn s14f_incorrect_data_format() {
    both(&format!(
        "I8=FIX.4.4|35=D|34=2|49=TW|52=<TIME>|56=ISLD|11=ID|21=1|40=1|54=1|38=+200.00|55=INTC|60=<TIME>
         E8=FIX.4.4|35=3|34=2|49=ISLD|52=<TIME>|56=TW|45=2|58=<ANY>|371=38|372=D|373=6
         {}",
        logout_exchange(3, 3)
    ));
}

#[test]
fn s14g_header_body_trailer_fields_out_of_order() {
    // FIX 4.2 defines SessionRejectReason only up to 11: no 373=14 there.
    let s = format!(
        "I8=FIX.4.4|35=D|11=id|21=3|38=100|40=1|54=1|55=MSFT|60=<TIME>|34=2|49=TW|52=<TIME>|56=ISLD
         E8=FIX.4.4|35=3|34=2|49=ISLD|52=<TIME>|56=TW|45=2|58=<ANY>|371=34|372=D|373=14
         I8=FIX.4.4|35=D|55=MSFT|34=3|49=TW|52=<TIME>|56=ISLD|11=id|21=3|40=1|54=1|60=<TIME>
         E8=FIX.4.4|35=3|34=3|49=ISLD|52=<TIME>|56=TW|45=3|58=<ANY>|371=34|372=D|373=14
         {}",
        logout_exchange(4, 4)
    );
    in44(&s);
    run(
        acceptor(Fix42),
        &format!("{LOGON}{s}")
            .replace("|373=14", "")
            .replace("FIX.4.4", "FIX.4.2"),
    );
}

#[test]
fn s14h_repeated_tag() {
    in44(&format!(
        "I8=FIX.4.4|35=D|34=2|49=TW|52=<TIME>|56=ISLD|11=ID|21=1|40=1|40=2|54=1|38=200.00|55=INTC|60=<TIME>
         E8=FIX.4.4|35=3|34=2|49=ISLD|52=<TIME>|56=TW|45=2|58=<ANY>|371=40|372=D|373=13
         {}",
        logout_exchange(3, 3)
    ));
}

#[test]
fn s14i_repeating_group_count_not_equal() {
    in44(&format!(
        "I8=FIX.4.4|35=D|34=2|49=TW|52=<TIME>|56=ISLD|11=ID|21=1|40=1|54=1|38=200.00|55=INTC|386=3|336=PRE-OPEN|336=AFTER-HOURS|60=<TIME>
         E8=FIX.4.4|35=3|34=2|49=ISLD|52=<TIME>|56=TW|45=2|58=<ANY>|371=386|372=D|373=16
         {}",
        logout_exchange(3, 3)
    ));
}

#[test]
fn reject_resent_message_then_queued_messages_in_order() {
    run(
        acceptor(Fix42),
        &format!(
            "{LOGON}
             I8=FIX.4.4|35=1|34=3|49=TW|52=<TIME>|56=ISLD|112=HELLO1
             E8=FIX.4.4|35=2|34=2|49=ISLD|52=<TIME>|56=TW|7=2|16=0
             I8=FIX.4.4|35=D|34=2|43=Y|49=TW|52=<TIME>|56=ISLD|122=<TIME>|11=ID|21=3|38=100|40=1|54=1|55=IVP|60=<TIME>|126=20040415
             E8=FIX.4.4|35=3|34=3|49=ISLD|52=<TIME>|56=TW|45=2|58=<ANY>|371=126|372=D|373=6
             E8=FIX.4.4|35=0|34=4|49=ISLD|52=<TIME>|56=TW|112=HELLO1
             I8=FIX.4.4|35=1|34=4|49=TW|52=<TIME>|56=ISLD|112=HELLO2
             E8=FIX.4.4|35=0|34=5|49=ISLD|52=<TIME>|56=TW|112=HELLO2"
        )
        .replace("FIX.4.4", "FIX.4.2"),
    );
}

// ------------------------------------------------------------ 15, 19, 20, 21: app-level cases

#[test]
fn s15_header_and_body_fields_ordered_differently() {
    both(&format!(
        "I8=FIX.4.4|35=D|34=2|49=TW|52=<TIME>|56=ISLD|11=id|21=3|38=100|40=1|54=1|55=MSFT|60=<TIME>
         E8=FIX.4.4|35=D|34=2|49=ISLD|52=<TIME>|56=TW|11=id|21=3|38=100|40=1|54=1|55=MSFT|60=<TIME>
         I8=FIX.4.4|35=D|49=TW|34=3|56=ISLD|52=<TIME>|40=1|38=100|55=MSFT|60=<TIME>|54=1|21=3|11=id
         E8=FIX.4.4|35=D|34=3|49=ISLD|52=<TIME>|56=TW|11=id|21=3|38=100|40=1|54=1|55=MSFT|60=<TIME>
         {}",
        logout_exchange(4, 4)
    ));
}

#[test]
fn s19a_poss_resend_already_seen_is_left_to_the_application() {
    both(&format!(
        "I8=FIX.4.4|35=D|34=2|49=TW|52=<TIME>|56=ISLD|11=id|21=3|38=100|40=1|54=1|55=MSFT|60=<TIME>
         E8=FIX.4.4|35=D|34=2|49=ISLD|52=<TIME>|56=TW|11=id|21=3|38=100|40=1|54=1|55=MSFT|60=<TIME>
         I8=FIX.4.4|35=D|34=3|49=TW|52=<TIME>|56=ISLD|97=Y|11=id|21=3|38=100|40=1|54=1|55=MSFT|60=<TIME>
         NOTHING
         {}",
        logout_exchange(4, 3)
    ));
}

#[test]
fn s19b_poss_resend_not_seen_is_processed() {
    both(&format!(
        "I8=FIX.4.4|35=D|34=2|49=TW|52=<TIME>|56=ISLD|97=Y|11=id|21=3|38=100|40=1|54=1|55=MSFT|60=<TIME>
         E8=FIX.4.4|35=D|34=2|49=ISLD|52=<TIME>|56=TW|97=Y|11=id|21=3|38=100|40=1|54=1|55=MSFT|60=<TIME>
         {}",
        logout_exchange(3, 3)
    ));
}

#[test]
fn s20_simultaneous_resend_request() {
    both(&format!(
        "{}{}{}{}
         E8=FIX.4.4|35=2|34=4|49=ISLD|52=<TIME>|56=TW|7=4|16=0
         {}{}{}
         I8=FIX.4.4|35=0|34=4|43=Y|49=TW|52=<TIME>|122=<TIME>|56=ISLD
         I8=FIX.4.4|35=0|34=5|43=Y|49=TW|52=<TIME>|122=<TIME>|56=ISLD
         I8=FIX.4.4|35=0|34=6|43=Y|49=TW|52=<TIME>|122=<TIME>|56=ISLD
         SEQ 5 8
         {}",
        order_sym(2, "INTC"),
        order_sym(3, "INTC"),
        hb_in(7),
        "",
        resend_request(8, 2, 3),
        resent(2, "INTC"),
        resent(3, "INTC"),
        logout_exchange(7, 5)
    ));
}

#[test]
fn s21_repeating_group_specifier_with_value_of_zero() {
    // QuickFIX sends SecurityDefinition <d>, which this gateway does not take (BusinessMessage-
    // Reject); the point of the case, a NumInGroup of 0, is made with NoPartyIDs <453> on an order.
    in44(&format!(
        "I8=FIX.4.4|35=d|34=2|49=TW|56=ISLD|52=<TIME>|320=JCD1091-20021011|322=1034356488676|323=6|55=TBS|22=8|167=CS|336=ONE_MAIN|58=No Products found for this Class Symbol|454=0
         E8=FIX.4.4|35=j|34=2|49=ISLD|52=<TIME>|56=TW|45=2|58=<ANY>|372=d|380=3
         {}{}{}",
        order(3, "453=0|"),
        echo(3, "453=0|"),
        logout_exchange(4, 4)
    ));
}

// ------------------------------------------------------------------ engine-level behaviours

#[test]
fn large_resend_continues_across_timer_calls_when_out_is_small() {
    let mut s = String::from(LOGON);
    s += "ECHO off\n";
    for i in 0..40 {
        s += &format!("SEND35=D|11=C{i}|55=INTC\n");
        s += &format!(
            "E8=FIX.4.4|35=D|34={}|49=ISLD|52=<TIME>|56=TW|11=C{i}|55=INTC\n",
            i + 2
        );
    }
    s += &resend_request(2, 1, 0);
    s += &gap_fill(1, 2);
    for i in 0..40 {
        s += &format!(
            "E8=FIX.4.4|35=D|34={}|43=Y|49=ISLD|52=<TIME>|56=TW|122=<TIME>|11=C{i}|55=INTC\n",
            i + 2
        );
    }
    s += &logout_exchange(3, 42);
    let mut r = Runner::new(acceptor(Fix44), 600);
    r.run(&s);
    assert_eq!(r.session.counters().messages_resent, 40);
}

#[test]
fn messages_stored_while_disconnected_are_resent_after_reconnect() {
    let cfg = SessionConfig {
        reset_on_disconnect: false,
        ..acceptor(Fix44)
    };
    run(
        cfg,
        &format!(
            "{LOGON}{}
             ECHO off
             SEND35=D|11=A|55=INTC
             SEND35=D|11=B|55=INTC
             SEQ 5 3
             CONNECT
             I8=FIX.4.4|35=A|34=3|49=TW|52=<TIME>|56=ISLD|98=0|108=30
             E8=FIX.4.4|35=A|34=5|49=ISLD|52=<TIME>|56=TW|98=0|108=30
             I8=FIX.4.4|35=2|34=4|49=TW|52=<TIME>|56=ISLD|7=3|16=0
             E8=FIX.4.4|35=D|34=3|43=Y|49=ISLD|52=<TIME>|56=TW|122=<TIME>|11=A|55=INTC
             E8=FIX.4.4|35=D|34=4|43=Y|49=ISLD|52=<TIME>|56=TW|122=<TIME>|11=B|55=INTC
             {}",
            logout_exchange(2, 2),
            gap_fill(5, 6),
        ),
    );
}

fn initiator() -> SessionConfig {
    SessionConfig {
        role: Role::Initiator,
        heartbeat_secs: 30,
        ..acceptor(Fix44)
    }
}

#[test]
fn initiator_logs_on_and_heartbeats() {
    run(
        initiator(),
        "LOGON
         E8=FIX.4.4|35=A|34=1|49=ISLD|52=<TIME>|56=TW|98=0|108=30|141=Y
         I8=FIX.4.4|35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=30|141=Y
         NOTHING
         SEQ 2 2
         E8=FIX.4.4|35=0|34=2|49=ISLD|52=<TIME>|56=TW",
    );
}

#[test]
fn initiator_logon_times_out() {
    run(
        initiator(),
        "LOGON
         E8=FIX.4.4|35=A|34=1|49=ISLD|52=<TIME>|56=TW|98=0|108=30|141=Y
         T+9990
         NOTHING
         T+10
         DISCONNECT LogonTimeout",
    );
}

#[test]
fn initiator_refused_by_logout() {
    run(
        initiator(),
        "LOGON
         E8=FIX.4.4|35=A|34=1|49=ISLD|52=<TIME>|56=TW|98=0|108=30|141=Y
         I8=FIX.4.4|35=5|34=1|49=TW|52=<TIME>|56=ISLD|58=who are you
         DISCONNECT LogonRejected",
    );
}

#[test]
fn reject_logon_sends_logout_and_leaves_the_session_disconnected() {
    let mut r = Runner::new(acceptor(Fix44), 4096);
    let logon = crate::fix::testing::with_trailer(
        b"8=FIX.4.4\x019=0\x0135=A\x0134=1\x0149=TW\x0152=20240301-12:00:00\x0156=ISLD\x0198=0\x01108=30\x01",
    );
    let msg = Message::decode(&logon).unwrap();
    let mut out = crate::session::OutBuf::with_capacity(4096);
    r.session
        .reject_logon(&msg, b"bad signature", r.now, &mut out);
    let sent = Message::decode(out.pending()).unwrap();
    assert_eq!(sent.msg_type(), crate::fix::MsgType::LOGOUT);
    assert_eq!(sent.get(58), Some(&b"bad signature"[..]));
    assert_eq!(r.session.state(), SessionState::Disconnected);
    assert_eq!(
        r.session.next_target_seq(),
        1,
        "a refused Logon does not consume its seq"
    );
}

#[test]
fn send_app_while_disconnected_stores_and_numbers() {
    let mut r = Runner::new(acceptor(Fix44), 4096);
    let mut out = crate::session::OutBuf::with_capacity(4096);
    let seq = r.session.send_app(b"8", Nanos(1), &mut out, |w| {
        w.str(11, b"X");
    });
    assert_eq!(seq, Ok(1));
    assert!(out.is_empty());
    assert!(r.session.store().outbound(1).is_some());
    assert_eq!(r.session.next_sender_seq(), 2);
}

#[test]
fn disconnect_reasons_are_small_copy_values() {
    fn copy<T: Copy>(_: T) {}
    copy(DisconnectReason::SeqTooLow);
    assert!(core::mem::size_of::<DisconnectReason>() <= 2);
    let _ = BeginString::Fix44;
}

/// A ResendRequest 1..0 over many stored messages is served in chunks: the request itself
/// and every timer serve at most `RESEND_CHUNK_MESSAGES` messages, never fill more than half
/// the outbound buffer, and together they resend every message once, in order, with the
/// Logon's number gap-filled.
#[test]
fn huge_resend_is_served_in_bounded_chunks() {
    use super::resend::RESEND_CHUNK_MESSAGES;
    const STORED: u64 = 1000;
    let mut r = Runner::new(acceptor(Fix44), 64 << 10);
    r.run(LOGON);
    let mut sink = crate::session::OutBuf::with_capacity(1 << 20);
    for i in 0..STORED {
        let seq = r.session.send_app(b"8", r.now, &mut sink, |w| {
            w.str(11, format!("ORD{i}").as_bytes());
        });
        assert_eq!(seq, Ok(i + 2));
        sink.clear();
    }
    let mut ts = [0u8; 27];
    let n = crate::fix::encode::write_timestamp(&mut ts, r.now, crate::fix::TimePrecision::Millis);
    let mut raw = b"8=FIX.4.4\x019=0\x0135=2\x0134=2\x0149=TW\x0152=".to_vec();
    raw.extend_from_slice(&ts[..n]);
    raw.extend_from_slice(b"\x0156=ISLD\x017=1\x0116=0\x01");
    let bytes = crate::fix::testing::with_trailer(&raw);
    let msg = Message::decode(&bytes).unwrap();
    let mut out = crate::session::OutBuf::with_capacity(32 << 10);
    r.session.on_message(&msg, r.now, &mut out);
    let mut seen = Vec::new(); // (MsgSeqNum, NewSeqNo for gap fills)
    let mut chunks = 0;
    loop {
        let pending = out.pending();
        assert!(
            pending.len() <= out.capacity() / 2 + 8192,
            "a chunk overran half the buffer"
        );
        let mut at = 0;
        let mut in_chunk = 0;
        while let crate::fix::Frame::Message { len, .. } =
            crate::fix::frame(&pending[at..], 1 << 16)
        {
            let m = Message::decode(&pending[at..at + len]).unwrap();
            let seq = m.seq_num().unwrap();
            let new = m.uint(36).ok().flatten();
            if m.msg_type_bytes() != b"0" {
                seen.push((seq, new));
                in_chunk += 1;
            }
            at += len;
        }
        assert!(in_chunk <= RESEND_CHUNK_MESSAGES as usize + 1);
        out.clear(); // the socket took it
        if seen.last().is_some_and(|&(s, _)| s == STORED + 1) {
            break;
        }
        chunks += 1;
        assert!(chunks < 10_000, "resend never finished");
        r.now = r.now.add(Nanos::from_millis(1));
        r.session.on_timer(r.now, &mut out);
    }
    assert!(chunks >= (STORED / u64::from(RESEND_CHUNK_MESSAGES)) as usize - 1);
    assert_eq!(
        seen.first(),
        Some(&(1, Some(2))),
        "the Logon's number is gap-filled"
    );
    let resent: Vec<u64> = seen.iter().skip(1).map(|&(s, _)| s).collect();
    assert_eq!(resent, (2..=STORED + 1).collect::<Vec<_>>());
}
