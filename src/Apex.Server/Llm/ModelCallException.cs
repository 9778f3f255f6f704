namespace Apex.Server.Llm;

/// <summary>
/// A model call that did not end well, with a stable code and a message fit for the user. What the provider said
/// (its error body) goes to the server log only.
/// </summary>
internal sealed class ModelCallException(string code, string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The answer was cut at the token limit.</summary>
    public const string Truncated = "model_truncated";

    /// <summary>The provider's content filter stopped the answer.</summary>
    public const string ContentFilter = "content_filter";

    /// <summary>An error from the endpoint, before or during the stream, or a stream that broke off.</summary>
    public const string Error = "model_error";

    /// <summary>The endpoint has been failing: calls fail fast until the circuit closes again.</summary>
    public const string Unavailable = "model_unavailable";

    public string Code { get; } = code;
}
