//! Built-in chat templates for model files that carry no `tokenizer.chat_template`
//! (`chatml`, `gemma`), and the choice of one by architecture.

/// Built-in templates for models whose GGUF has no `tokenizer.chat_template`.
///
/// - `chatml`: `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then
///   `<|im_start|>assistant\n` when a generation prompt is asked for.
/// - `gemma`: Gemma's turn format. `{{ bos_token }}` first; a leading system message is
///   folded into the first user turn followed by a blank line; roles must alternate
///   user/assistant; `assistant` is written `model`; content is trimmed; each turn is
///   `<start_of_turn>{role}\n{content}<end_of_turn>\n`; the generation prompt is
///   `<start_of_turn>model\n`.
pub fn builtin(name: &str) -> Option<&'static str> {
    builtin_entry(name).map(|(_, source)| source)
}

pub(super) fn builtin_entry(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "chatml" => Some(("chatml", CHATML)),
        "gemma" => Some(("gemma", GEMMA)),
        _ => None,
    }
}

/// The built-in template to use for architecture `arch` (`general.architecture`) when the
/// file carries no template: `gemma` for every `gemma*` architecture (Gemma models are
/// trained only on their own turn markers), `chatml` otherwise — the most widespread
/// format among instruction-tuned models and the one llama.cpp also falls back to.
pub fn fallback_for_arch(arch: &str) -> &'static str {
    if arch.starts_with("gemma") {
        GEMMA
    } else {
        CHATML
    }
}

const CHATML: &str = "{%- for message in messages %}\
{{- '<|im_start|>' + message['role'] + '\\n' }}\
{%- if message['content'] is string %}{{- message['content'] }}{%- endif %}\
{{- '<|im_end|>\\n' }}\
{%- endfor %}\
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

pub(super) const GEMMA: &str = "{{- bos_token }}\
{%- if messages and messages[0]['role'] == 'system' %}\
{%- set first_user_prefix = (messages[0]['content'] or '') | trim ~ '\\n\\n' %}\
{%- set loop_messages = messages[1:] %}\
{%- else %}\
{%- set first_user_prefix = '' %}\
{%- set loop_messages = messages %}\
{%- endif %}\
{%- for message in loop_messages %}\
{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\
{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}\
{%- endif %}\
{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}\
{{- '<start_of_turn>' ~ role ~ '\\n' ~ (first_user_prefix if loop.first else '') }}\
{{- (message['content'] or '') | trim }}\
{{- '<end_of_turn>\\n' }}\
{%- endfor %}\
{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}";
