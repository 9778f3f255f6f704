using System.ComponentModel.DataAnnotations;

namespace Apex.Server.Llm;

internal sealed class LlmOptions
{
    public const string Section = "Apex:Llm";

    /// <summary><c>builtin</c> (the deterministic model that needs no network) or <c>openai</c> (any OpenAI-compatible endpoint).</summary>
    [Required, RegularExpression("^(builtin|openai)$")]
    public string Provider { get; set; } = "builtin";

    /// <summary>For <c>openai</c>: the API's base address, e.g. <c>https://api.openai.com/v1/</c> or Ollama's <c>http://127.0.0.1:11434/v1/</c>.</summary>
    public Uri? Endpoint { get; set; }

    /// <summary>For <c>openai</c>: sent as <c>Authorization: Bearer</c>; optional for local servers.</summary>
    public string? ApiKey { get; set; }

    /// <summary>For <c>openai</c>: the model name, e.g. <c>gpt-4o-mini</c>.</summary>
    public string? Model { get; set; }

    /// <summary>Attempts for a model call that fails before it streamed anything (connection errors, 429, 5xx).</summary>
    [Range(1, 10)]
    public int MaxAttempts { get; set; } = 3;

    /// <summary>The first retry's pause (then doubled, with jitter); a <c>Retry-After</c> from the endpoint wins.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Failed calls (in a 30 s window, at least 5 calls, half of them failing) open the circuit to the endpoint for this long: calls fail fast meanwhile.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan BreakDuration { get; set; } = TimeSpan.FromSeconds(30);

    public bool IsValid => Provider != "openai" || (Endpoint is { IsAbsoluteUri: true } && !string.IsNullOrWhiteSpace(Model));

    /// <summary>
    /// A pause before each streamed piece of the built-in model's answers, to make it behave like a
    /// remote model for demos and load tests. Zero by default.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan BuiltInDelay { get; set; } = TimeSpan.Zero;

    /// <summary>
    /// How the built-in model streams the shipped team's texts: <c>lines</c> (a line a piece) or <c>tokens</c> (pieces of
    /// about four characters, as a remote model streams them: a 2,000-character report is ~500 pieces). A user's own
    /// agents always stream tokens.
    /// </summary>
    [RegularExpression("^(lines|tokens)$", ErrorMessage = "BuiltInPieces is lines or tokens.")]
    public string BuiltInPieces { get; set; } = "lines";
}
