using Microsoft.Extensions.AI;

namespace Apex.Server.Llm;

/// <summary>
/// The chat pipeline of Microsoft.Extensions.AI around a model: the library's function-invocation loop (the agents'
/// tools are AIFunctions that call the run's ToolDispatcher), OpenTelemetry's GenAI spans, logging (prompts and
/// outputs at Trace only), the run's budget before each call, and Apex's honest outcomes next to the model.
/// </summary>
internal static class ModelPipeline
{
    public const string ActivitySource = "Apex.Llm";

    public static IChatClient Build(IChatClient model, int maxTurnsPerAgent, ILoggerFactory loggers, IServiceProvider? services = null) =>
        new ChatClientBuilder(model)
            .UseFunctionInvocation(loggers, f =>
            {
                f.MaximumIterationsPerRequest = maxTurnsPerAgent;
                // One call at a time, so a run's tool events keep their order.
                f.AllowConcurrentInvocation = false;
            })
            // Under the loop: each model call of an agent's turns is checked against the run's budget.
            .Use(inner => new BudgetChatClient(inner))
            .UseOpenTelemetry(loggers, ActivitySource)
            .UseLogging(loggers)
            .Use(inner => new ModelOutcomeChatClient(inner, loggers.CreateLogger<ModelOutcomeChatClient>()))
            .Build(services);
}
