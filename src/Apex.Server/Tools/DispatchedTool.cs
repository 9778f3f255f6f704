using System.Text.Json;
using Apex.Server.Execution;
using Microsoft.Extensions.AI;

namespace Apex.Server.Tools;

/// <summary>
/// An Apex tool as the model sees it: an <see cref="AIFunction"/> that the library's function-invocation loop calls,
/// for one agent of one run. Calling it goes through the run's <see cref="ToolDispatcher"/> (arguments checked against
/// the schema, tier, timeout, events, usage log); the dispatcher's answer, success or failure, is what the model reads.
/// </summary>
/// <remarks>A tool the agent's definition marks <c>approval: required</c> is not run here: the dispatcher parks the call for a person's answer.</remarks>
internal sealed class DispatchedTool(IApexTool tool, ToolDispatcher dispatcher, UserExecutionContext context, string agent, bool requiresApproval) : AIFunction
{
    public override string Name => tool.Name;

    public override string Description => tool.Description;

    public override JsonElement JsonSchema => tool.ParametersSchema;

    protected override async ValueTask<object?> InvokeCoreAsync(AIFunctionArguments arguments, CancellationToken cancellationToken)
    {
        // The loop names the call being invoked (its id, and the arguments as the model sent them, or why they did not parse).
        var call = FunctionInvokingChatClient.CurrentContext?.CallContent
            ?? new FunctionCallContent(Guid.CreateVersion7().ToString(), tool.Name, arguments.ToDictionary(a => a.Key, a => a.Value));
        var result = await dispatcher.InvokeAsync(context, agent, call, requiresApproval, cancellationToken);
        return result.Result;
    }
}
