using System.ComponentModel.DataAnnotations;

namespace Apex.Server.Llm;

internal sealed class LlmOptions
{
    public const string Section = "Apex:Llm";

    /// <summary><c>builtin</c>: the deterministic model that needs no network.</summary>
    [Required, RegularExpression("^builtin$")]
    public string Provider { get; set; } = "builtin";

    /// <summary>
    /// A pause before each streamed piece of the built-in model's answers, to make it behave like a
    /// remote model for demos and load tests. Zero by default.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan BuiltInDelay { get; set; } = TimeSpan.Zero;
}
