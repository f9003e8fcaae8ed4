//! A stand-in for the host behind the editor, for running the editor's code
//! without a DAW (the `editor_host` example, test builds): parameter values
//! are set directly, as a host does once a gesture ends; state requests go
//! nowhere.

use nice_plug::context::gui::GuiContextInner;
use nice_plug::context::PluginApi;
use nice_plug::params::internals::ParamPtr;
use nice_plug::plugin::PluginState;

/// See the module docs.
pub struct NoHost;

impl GuiContextInner for NoHost {
    fn plugin_api(&self) -> PluginApi {
        PluginApi::Standalone
    }
    unsafe fn raw_begin_set_parameter(&self, _: ParamPtr) {}
    unsafe fn raw_set_parameter_normalized(&self, p: ParamPtr, v: f32) {
        // SAFETY: the caller's `ParamSetter` got `p` from parameters it keeps alive.
        let _ = unsafe { p._internal_set_normalized_value(v) };
    }
    unsafe fn raw_end_set_parameter(&self, _: ParamPtr) {}
    fn get_state(&self) -> PluginState {
        PluginState {
            version: String::new(),
            params: Default::default(),
            fields: Default::default(),
        }
    }
    fn set_state(&self, _: PluginState) {}
    fn request_restart(&self) {}
}
