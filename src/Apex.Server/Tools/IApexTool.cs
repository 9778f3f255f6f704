using System.Text.Json;
using Apex.Server.Execution;

namespace Apex.Server.Tools;

/// <summary>A typed function the agents may call: a JSON schema in, a JSON result out.</summary>
internal interface IApexTool
{
    string Name { get; }
    string Description { get; }

    /// <summary>The JSON schema of the arguments object.</summary>
    JsonElement ParametersSchema { get; }

    /// <summary>The lowest plan tier allowed to call it: free, pro or enterprise.</summary>
    string RequiredTier { get; }

    /// <summary>Runs the tool for the context's user only. Throw <see cref="ToolException"/> for an expected failure.</summary>
    Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken);
}

/// <summary>An expected tool failure: reported to the model as a result, never as a crash.</summary>
internal sealed class ToolException(string message) : Exception(message);
