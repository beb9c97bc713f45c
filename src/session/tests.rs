//! Session scenarios, numbered after QuickFIX's acceptance tests (`test/definitions/server/`).

use super::script::{acceptor, run};
use crate::fix::BeginString::Fix44;

#[test]
fn s1a_valid_logon_with_correct_msg_seq_num() {
    run(
        acceptor(Fix44),
        "
        I8=FIX.4.4|35=A|34=1|49=TW|52=<TIME>|56=ISLD|98=0|108=30
        E8=FIX.4.4|35=A|34=1|49=ISLD|52=<TIME>|56=TW|98=0|108=30
        IDISCONNECT
        ",
    );
}
