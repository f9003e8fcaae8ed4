//! CLAP remote-control pages: the knobs grouped eight to a page, so a DAW's
//! controller mapping (Bitwig, Reaper's CLAP support) lands on useful controls
//! without the user mapping them one by one.

use nice_plug::prelude::*;

use crate::params::AntiphonParams;

/// Page names, in the order they are declared (tests read them back).
pub const PAGES: [&str; 3] = ["Output", "Voice", "Stream"];

/// Declares the pages: output stage, sampling/decoder, lead and conversation.
pub fn define(p: &AntiphonParams, context: &mut impl RemoteControlsContext) {
    context.add_section("Antiphon", |s| {
        s.add_page(PAGES[0], |pg| {
            pg.add_param(&p.gain_db);
            pg.add_param(&p.mix);
            pg.add_param(&p.bypass);
        });
        s.add_page(PAGES[1], |pg| {
            pg.add_param(&p.audio_temperature);
            pg.add_param(&p.text_temperature);
            pg.add_param(&p.top_k);
            pg.add_param(&p.codebook_depth);
        });
        s.add_page(PAGES[2], |pg| {
            pg.add_param(&p.lead_floor_ms);
            pg.add_param(&p.fixed_latency);
            pg.add_param(&p.listen);
            pg.add_param(&p.reset);
        });
    });
}
