using System.Text.Json;

namespace Apex.Server.Tools;

internal static class ToolJson
{
    /// <summary>Tool results are free-form dictionaries; they go through the AI library's reflection-enabled options.</summary>
    public static JsonSerializerOptions Options => Microsoft.Extensions.AI.AIJsonUtilities.DefaultOptions;
}
