/// One turn of a conversation.
public struct ChatMessage: Sendable, Equatable {
    public enum Role: String, Sendable { case system, user, assistant }
    public var role: Role
    public var content: String
    public init(role: Role, content: String) {
        self.role = role
        self.content = content
    }
}

/// The instruct formats of the reference models, written as code rather than interpreted from
/// the GGUF's Jinja template (`tokenizer.chat_template`), which only picks the format and, for
/// SmolLM2, supplies the default system message.
///
/// - ChatML (SmolLM2, Qwen2): `<|im_start|>{role}\n{content}<|im_end|>\n` per turn, then
///   `<|im_start|>assistant\n`; when the template injects a system turn before a conversation
///   that has none (SmolLM2's "You are a helpful AI assistant named SmolLM, …"), so does this.
/// - Gemma: `<start_of_turn>user\n{content}<end_of_turn>\n`, the assistant's role named `model`,
///   a system message folded into the first user turn (`{system}\n\n{user}`), then
///   `<start_of_turn>model\n`. BOS comes from the tokenizer.
public struct ChatTemplate: Sendable, Equatable {
    public enum Format: String, Sendable { case chatML, gemma }
    public var format: Format
    public var defaultSystem: String?

    public init(format: Format, defaultSystem: String? = nil) {
        self.format = format
        self.defaultSystem = defaultSystem
    }

    /// The model's format, from its chat template or, without one, its special tokens.
    /// - Throws: `GenerationError` when the model has neither format's markers.
    public init(model: LanguageModel) throws {
        let template = model.file.metadata["tokenizer.chat_template"]?.string ?? ""
        func inVocabulary(_ token: String) -> Bool { model.tokenizer.lookup[Array(token.utf8)] != nil }
        if template.contains("<|im_start|>") || inVocabulary("<|im_start|>") {
            self.init(format: .chatML, defaultSystem: Self.injectedSystem(template))
        } else if template.contains("<start_of_turn>") || inVocabulary("<start_of_turn>") {
            self.init(format: .gemma)
        } else {
            throw GenerationError("\(model.file.path): no known chat format (ChatML or Gemma) in its template or vocabulary")
        }
    }

    /// The system text a ChatML template adds when the first message is not a system one.
    static func injectedSystem(_ template: String) -> String? {
        guard template.contains("messages[0]['role'] != 'system'"),
              let open = template.range(of: "<|im_start|>system\n"),
              let close = template.range(of: "<|im_end|>", range: open.upperBound..<template.endIndex) else { return nil }
        let text = String(template[open.upperBound..<close.lowerBound])
        return text.isEmpty ? nil : text
    }

    /// The prompt for `messages`, ending with the assistant's turn opened.
    public func render(_ messages: [ChatMessage]) -> String {
        switch format {
        case .chatML:
            var out = ""
            if let defaultSystem, messages.first?.role != .system {
                out += "<|im_start|>system\n\(defaultSystem)<|im_end|>\n"
            }
            for m in messages { out += "<|im_start|>\(m.role.rawValue)\n\(m.content)<|im_end|>\n" }
            return out + "<|im_start|>assistant\n"
        case .gemma:
            var out = ""
            var system: String?
            for m in messages {
                switch m.role {
                case .system: system = m.content
                case .user:
                    let content = system.map { "\($0)\n\n\(m.content)" } ?? m.content
                    system = nil
                    out += "<start_of_turn>user\n\(content)<end_of_turn>\n"
                case .assistant: out += "<start_of_turn>model\n\(m.content)<end_of_turn>\n"
                }
            }
            return out + "<start_of_turn>model\n"
        }
    }
}

extension LanguageModel {
    /// The tokens this model reads for `task`: its prompt as written or, with `chat`, as one user
    /// turn in the model's chat format — the reply may then hold the answer anywhere, and `task`
    /// is marked so.
    /// - Throws: `GenerationError` when the model has no chat format it knows.
    public func promptTokens(for task: inout RetrievalTask, chat: Bool) throws -> [Int32] {
        var text = task.prompt
        if chat {
            text = try ChatTemplate(model: self).render([ChatMessage(role: .user, content: task.prompt)])
            task.answerAnywhere = true
        }
        return tokenizer.encode(text)
    }
}
