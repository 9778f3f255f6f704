using System.Collections.Immutable;
using System.Diagnostics;
using System.Text.Json;
using Apex.Client;
using Apex.Server.Events;
using Apex.Server.Execution;
using Apex.Server.Storage;

namespace Apex.Server.Agents;

/// <summary>
/// Runs one run with the team the run names (the shipped one by default): the supervisor follows the team's policy (a sequence,
/// or a router that runs triage and picks the agents that follow from fields of its result), runs each agent, stores the answer
/// and ends the run with exactly one terminal event.
/// </summary>
internal sealed partial class ExecutionEngine(RunRecord run, UserExecutionContext context, RunControl control, RunEvents events, AgentRunner runner, UsageRecorder usage, ApexTelemetry telemetry,
    AgentCatalog catalog, IThreadStore threads, IRunStore runs, IApprovalStore approvals, ApprovalOptions approvalOptions, IdGenerator ids, TimeProvider time, string nodeId,
    ILogger logger) : IDisposable
{
    private const int HistoryMessages = 12;
    /// <summary>The <c>run_failed</c> reason of a run whose user's monthly budget ran out before one of its model calls.</summary>
    public const string BudgetExceeded = "budget_exceeded";

    /// <summary>The <c>run_failed</c> reason of a run whose agent or team was deleted before it started.</summary>
    public const string AgentNotFound = "agent_not_found";

    public string RunId => run.Id;

    public RunControl Control => control;

    /// <summary>
    /// Runs the run, or resumes it from its checkpoint after a tool call of it waited for approval. When an agent meets a call that
    /// needs approval, the run stores the approval and its checkpoint, says <c>approval_requested</c> and leaves the worker without a
    /// terminal event: the answer (or the timeout, or a cancellation) queues it again, and whichever node claims it goes on from there.
    /// </summary>
    public async Task RunAsync()
    {
        using var span = telemetry.Source.StartActivity("apex.run");
        span?.SetTag("apex.run.id", run.Id);
        span?.SetTag("apex.thread.id", run.ThreadId);
        var started = Stopwatch.GetTimestamp();
        try
        {
            var checkpoint = run.Checkpoint is { } stored ? JsonSerializer.Deserialize(stored, ApexJsonContext.Default.RunCheckpoint) : null;
            AgentResume? resume = null;
            if (checkpoint is null) await events.RunStartedAsync(nodeId);
            else resume = await ResumeAsync(checkpoint);
            // The run's own message by id, and its history without the messages queued behind it: with a deep queue, the thread's
            // newest messages are later ones.
            var message = await threads.GetMessageAsync(context.UserId, run.MessageId, control.Token)
                ?? throw new InvalidOperationException("The run's message is missing.");
            IReadOnlyList<MessageRecord> history = [.. await threads.HistoryForAsync(context.UserId, context.ThreadId, run.MessageId, HistoryMessages, control.Token), message];
            var request = message.Content;

            var team = await catalog.ResolveAsync(run, control.Token);
            if (team is null)
            {
                await usage.RecordAsync(run);
                await events.FailedAsync(AgentNotFound, "The agent or team this message named no longer exists.");
                return;
            }
            if (checkpoint is null) await events.AgentStartedAsync(AgentNames.Supervisor, context.Depth, null);

            var previous = await PreviousTurnAsync(history);
            var results = checkpoint is null ? new Dictionary<string, JsonElement>() : new Dictionary<string, JsonElement>(checkpoint.Results);
            var answerId = checkpoint?.AnswerId ?? ids.NewId();
            var answer = checkpoint?.Answer ?? "";
            var note = checkpoint?.Note;
            ImmutableArray<string> pipeline;
            string? sufficiency = checkpoint?.Sufficiency, intent = checkpoint?.Intent;
            RunCheckpoint At(ImmutableArray<string> agents, int position, AgentSuspension waiting) =>
                new(agents, position, results, sufficiency, intent, answerId, answer, note, waiting.Call.Agent, waiting.Call.CallId, waiting.Conversation, waiting.Rounds);
            switch (team.Supervisor)
            {
                case SupervisorPolicy.Router router when checkpoint is not { Position: >= 0 }:
                    if (checkpoint is null)
                        await events.AgentThinkingAsync(AgentNames.Supervisor, $"Running {router.Triage} first; what it reads in the request and the data decides who answers.");
                    var triage = await runner.RunAsync(team.Get(router.Triage), context, Brief(request, history, results, previous), null, control.Token, resume);
                    resume = null;
                    if (triage.Suspension is { } triageWaits)
                    {
                        await WaitForApprovalAsync(At([], -1, triageWaits), triageWaits);
                        return;
                    }
                    if (triage.Result is { } triageResult) results[router.Triage] = triageResult;
                    var values = router.Read(triage.Result);
                    pipeline = router.PipelineFor(values);
                    sufficiency = values.FirstOrDefault(v => v.Field.Name == "data_sufficiency").Value;
                    intent = values.FirstOrDefault(v => v.Field.Name == "intent").Value;
                    var read = string.Join(", ", values.Select(v => $"{v.Field.Label} {v.Value}"));
                    await events.AgentThinkingAsync(AgentNames.Supervisor, $"{(read.Length > 0 ? char.ToUpperInvariant(read[0]) + read[1..] : "No fields")}: {string.Join(" -> ", pipeline)}.");
                    break;
                case SupervisorPolicy.Router:
                    pipeline = [.. checkpoint!.Pipeline];
                    break;
                case SupervisorPolicy.Sequence sequence:
                    pipeline = sequence.Agents;
                    if (checkpoint is null) await events.AgentThinkingAsync(AgentNames.Supervisor, $"Running {string.Join(" -> ", pipeline)}.");
                    break;
                default:
                    throw new InvalidOperationException("SupervisorPolicy is a closed type.");
            }

            var hasWriter = pipeline.Any(n => team.Get(n).WritesAnswer);
            for (var i = checkpoint is { Position: >= 0 } ? checkpoint.Position : 0; i < pipeline.Length; i++)
            {
                var name = pipeline[i];
                var agent = team.Get(name);
                // The agent that writes the answer (the one without a result schema) streams it; in a pipeline without one, the last
                // agent's result is the answer.
                var last = i == pipeline.Length - 1 && !hasWriter;
                var outcome = await runner.RunAsync(agent, context, Brief(request, history, results, previous), agent.WritesAnswer || last ? answerId : null, control.Token, resume);
                resume = null;
                if (outcome.Suspension is { } waits)
                {
                    await WaitForApprovalAsync(At(pipeline, i, waits), waits);
                    return;
                }
                if (agent.WritesAnswer)
                {
                    if (outcome.Succeeded && outcome.Text.Length > 0) answer = outcome.Text;
                    else (answer, note) = (await FallbackReportAsync(answerId, results, outcome), $"The model could not write the report ({outcome.Status}); Apex's built-in report writer wrote it from the agents' results.");
                }
                else
                {
                    if (outcome.Result is { } result) results[name] = result;
                    if (last && answer.Length == 0) answer = outcome.Succeeded ? outcome.Text : $"The {name} agent could not answer ({outcome.Status}).";
                }
            }

            await runs.SaveAnswerAsync(new MessageRecord(answerId, context.ThreadId, context.UserId, run.Id, "assistant", answer, time.GetUtcNow()), CancellationToken.None);
            await events.AgentCompletedAsync(AgentNames.Supervisor, "ok",
                JsonSerializer.SerializeToElement(new SupervisorResult(sufficiency ?? "", pipeline, intent), ApexJsonContext.Default.SupervisorResult));
            await events.CompletedAsync(answerId, Stopwatch.GetElapsedTime(started).TotalMilliseconds, await usage.RecordAsync(run), note);
        }
        catch (OperationCanceledException) when (control.Token.IsCancellationRequested)
        {
            await usage.RecordAsync(run);
            if (control.Reason == CancelReasons.Timeout)
                await events.FailedAsync("timeout", "The run did not finish within its time limit.");
            else
                await events.CancelledAsync(control.Reason);
        }
        catch (BudgetExceededException ex)
        {
            await usage.RecordAsync(run);
            await events.FailedAsync(BudgetExceeded, ex.Message);
        }
        catch (Exception ex)
        {
            LogRunFailed(logger, ex, run.Id);
            await usage.RecordAsync(run);
            // The exception's own words (SQL, paths, provider messages) stay in the server log.
            await events.FailedAsync("error", $"The run failed on the server; the server log has the details (run {run.Id}).");
        }
    }

    /// <summary>
    /// Picks a resumed run up where it waited: the agents it had opened are open again, the answer is told (<c>approval_resolved</c>),
    /// and a run cancelled while it waited ends here (its terminal event closes those agents).
    /// </summary>
    private async Task<AgentResume> ResumeAsync(RunCheckpoint checkpoint)
    {
        events.Adopt(AgentNames.Supervisor);
        events.Adopt(checkpoint.Agent);
        var decision = await approvals.GetAsync(context.UserId, run.Id, checkpoint.CallId, control.Token)
            ?? throw new InvalidOperationException("The approval the run waited for is missing.");
        var tool = checkpoint.Conversation.SelectMany(m => m.Calls ?? []).FirstOrDefault(c => c.CallId == checkpoint.CallId)?.Name ?? "";
        LogResumed(logger, run.Id, decision.Status);
        if (decision.Status != ApprovalStatus.Pending)
        {
            JsonElement? edited = decision.EditedArguments is { } e ? JsonDocument.Parse(e).RootElement.Clone() : null;
            await events.ApprovalResolvedAsync(checkpoint.Agent, new ApprovalResolvedData(decision.CallId, tool, decision.Status, decision.DecidedBy, decision.Reason, edited));
        }
        if (decision.Status == ApprovalStatus.Cancelled || decision.Status == ApprovalStatus.Pending || run.CancelRequested)
        {
            control.Cancel(decision.Status == ApprovalStatus.Cancelled && decision.Reason is { Length: > 0 } reason ? reason : CancelReasons.User);
            control.Token.ThrowIfCancellationRequested();
        }
        return new AgentResume(checkpoint.Conversation, checkpoint.Rounds, decision);
    }

    /// <summary>
    /// Parks the run: the approval is stored, <c>approval_requested</c> is stored (and sent) once everything before it is, then the run
    /// is left waiting with its checkpoint, holding no worker and no lease. What its model calls used so far is recorded now.
    /// </summary>
    private async Task WaitForApprovalAsync(RunCheckpoint checkpoint, AgentSuspension waiting)
    {
        var call = waiting.Call;
        var now = time.GetUtcNow();
        var expires = now + approvalOptions.Timeout;
        var approval = new ApprovalRecord(run.Id, call.CallId, context.UserId, context.ThreadId, call.Agent, call.Tool, call.Arguments.GetRawText(),
            ApprovalStatus.Pending, null, null, null, now, expires, null);
        await usage.RecordAsync(run);
        var parked = await events.ApprovalRequestedAsync(call.Agent, call.CallId, call.Tool, call.Arguments, [context.UserId], expires, async requested =>
        {
            var result = await approvals.ParkAsync(approval, nodeId, JsonSerializer.Serialize(checkpoint, ApexJsonContext.Default.RunCheckpoint), requested, CancellationToken.None);
            return (result, result?.Requested);
        });
        LogWaiting(logger, run.Id, call.Tool, parked?.Status ?? "lost");
    }

    /// <summary>Reporting never fails: when the model cannot write the report, the deterministic writer does, and says so.</summary>
    private async Task<string> FallbackReportAsync(string answerId, Dictionary<string, JsonElement> results, AgentOutcome failed)
    {
        var report = ReportWriter.Write(results) +
            $"\n> The model could not write this report ({failed.Status}); Apex's built-in report writer wrote it from the figures above.\n";
        await events.MessageDeltaAsync(AgentNames.Reporting, answerId, report);
        return report;
    }

    private string Brief(string request, IReadOnlyList<MessageRecord> history, Dictionary<string, JsonElement> results, PreviousTurn? previous) =>
        JsonSerializer.Serialize(new AgentBrief(request, context.Tier, [.. history.Where(m => m.Id != run.MessageId).Select(m => new BriefMessage(m.Role, m.Content))], results,
            time.GetUtcNow(), previous), ApexJsonContext.Default.AgentBrief);

    /// <summary>
    /// The thread's previous question, with what triage read in it and what its answer singled out, from the stored results
    /// of the run that answered it: what a follow-up's "it" and "the chat feature" lean on.
    /// </summary>
    private async Task<PreviousTurn?> PreviousTurnAsync(IReadOnlyList<MessageRecord> history)
    {
        var current = history.ToList().FindIndex(m => m.Id == run.MessageId);
        var answer = history.Take(current < 0 ? history.Count : current).LastOrDefault(m => m.Role == "assistant" && m.RunId is not null);
        if (answer is null) return null;
        var question = history.TakeWhile(m => m.Id != answer.Id).LastOrDefault(m => m.Role == "user");
        if (question is null) return null;
        var stored = (await runs.GetRunAsync(context.UserId, answer.RunId!, control.Token))?.Results;
        Dictionary<string, JsonElement>? results = null;
        try
        {
            if (stored is not null) results = JsonSerializer.Deserialize(stored, ApexJsonContext.Default.DictionaryStringJsonElement);
        }
        catch (JsonException)
        {
            // results of another shape: the follow-up is read from the previous question alone
        }
        results ??= [];
        return new PreviousTurn(question.Content, AgentResults.Agent(results, AgentNames.Triage, ApexJsonContext.Default.TriageResult),
            AgentResults.Agent(results, AgentNames.Data, ApexJsonContext.Default.DataResult)?.Focus);
    }

    public void Dispose() => control.Dispose();

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} waits for the approval of a {Tool} call (now {Status})")]
    private static partial void LogWaiting(ILogger logger, string runId, string tool, string status);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} resumes after its approval ended {Status}")]
    private static partial void LogResumed(ILogger logger, string runId, string status);

    [LoggerMessage(Level = LogLevel.Error, Message = "Run {RunId} failed")]
    private static partial void LogRunFailed(ILogger logger, Exception exception, string runId);
}
