using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Apex.Client;
using Apex.Server.Auth;
using Apex.Server.Storage;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Apex.Server.Interop;

/// <summary>
/// The OpenAI-compatible door under <c>/v1</c>: the shipped team is the model <c>apex</c>, and each of the user's agents and teams
/// (and the shared ones) is a model by its name; a chat completion or a response is an
/// ordinary run. Each request starts a new thread, with the conversation's earlier messages as context, unless the header
/// <c>x-apex-thread-id</c> names a thread of the caller's to go on with (whose own stored history the agents then see).
/// Every answer names its thread and run in the <c>x-apex-thread-id</c> and <c>x-apex-run-id</c> headers. Errors, including
/// a missing or wrong bearer, are in OpenAI's error shape.
/// </summary>
internal static class OpenAiEndpoints
{
    public const string ModelId = "apex";
    public const string ThreadHeader = "x-apex-thread-id";
    public const string RunHeader = "x-apex-run-id";
    /// <summary>When the model was published: the day this API was added (OpenAI's <c>created</c>, Unix seconds).</summary>
    private const long ModelCreated = 1796083200;

    public static RouteGroupBuilder MapOpenAiEndpoints(this IEndpointRouteBuilder app)
    {
        // Anonymous to the authorization middleware, whose challenge is an empty 401: the filter authenticates and answers OpenAI's 401.
        var group = app.MapGroup("/v1").AllowAnonymous().AddEndpointFilter(AuthenticateAsync).WithTags("OpenAI");
        group.MapGet("/models", ListModels);
        // The bodies are read by the handlers, so that a malformed one is answered in OpenAI's error shape too.
        group.MapPost("/chat/completions", ChatCompletionsAsync).Accepts<OpenAiChatRequest>("application/json");
        group.MapPost("/responses", ResponsesAsync).Accepts<OpenAiResponseRequest>("application/json");
        return group;
    }

    private static async ValueTask<object?> AuthenticateAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var result = await http.AuthenticateAsync();
        if (!result.Succeeded || CurrentUser.From(result.Principal) is null)
            return Error(StatusCodes.Status401Unauthorized, "Missing or invalid bearer: send an Apex access token or API key as 'Authorization: Bearer <key>'.", "invalid_api_key");
        http.User = result.Principal;
        return await next(context);
    }

    /// <summary>The shipped team (<c>apex</c>), then the user's own and the shared agents and teams, each by name.</summary>
    private static async Task<Ok<OpenAiModelList>> ListModels(HttpContext http, IAgentStore agents, CancellationToken cancellationToken)
    {
        var user = CurrentUser.From(http.User)!;
        var models = new List<OpenAiModel> { new(ModelId, ModelCreated, "apex") };
        foreach (var kind in new[] { AgentKinds.Agent, AgentKinds.Team })
            models.AddRange((await agents.ListAsync(user.Id, kind, cancellationToken)).Where(a => a.Name != ModelId)
                .Select(a => new OpenAiModel(a.Name, a.CreatedAt.ToUnixTimeSeconds(), a.UserId == user.Id ? "you" : "shared")));
        return TypedResults.Ok(new OpenAiModelList(models));
    }

    private static async Task<Results<ServerSentEventsResult<string>, JsonHttpResult<OpenAiChatCompletion>, JsonHttpResult<OpenAiErrorBody>>> ChatCompletionsAsync(HttpContext http, DoorRuns doors, TimeProvider time, CancellationToken cancellationToken)
    {
        var user = CurrentUser.From(http.User)!;
        if (await ReadAsync(http.Request, ApexJsonContext.Default.OpenAiChatRequest, cancellationToken) is not { } request) return BadBody();
        var model = ModelOf(request.Model);
        var messages = (request.Messages ?? []).Select(m => new EarlierTurn(m.Role, DoorRuns.TextOf(m.Content))).ToList();
        var started = await StartAsync(http, doors, user, messages, "messages", model, cancellationToken);
        if (started is Start.Refused refused) return refused.Error;
        var run = ((Start.Running)started).Run;
        var id = "chatcmpl-" + run.RunId;
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        var events = doors.FollowAsync(user.Id, run, cancellationToken);
        if (request.Stream == true)
            return TypedResults.ServerSentEvents(ChatChunksAsync(id, created, model, events, request.StreamOptions?.IncludeUsage == true, cancellationToken));

        var terminal = await TerminalAsync(events);
        if (terminal is not RunCompleted completed) return RunError(http, terminal);
        var answer = await doors.AnswerAsync(user.Id, completed, cancellationToken);
        return TypedResults.Json(new OpenAiChatCompletion(id, created, model, [new OpenAiChoice(0, new OpenAiAnswer("assistant", answer), "stop")],
            ChatUsage(completed.Data.Usage)), ApexJsonContext.Default.OpenAiChatCompletion);
    }

    private static async IAsyncEnumerable<SseItem<string>> ChatChunksAsync(string id, long created, string model, IAsyncEnumerable<ApexEvent> events, bool includeUsage,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        yield return Data(new OpenAiChatChunk(id, created, model, [new OpenAiChunkChoice(0, new OpenAiDelta("assistant", ""), null)]), ApexJsonContext.Default.OpenAiChatChunk);
        await foreach (var evt in events.WithCancellation(cancellationToken))
        {
            switch (evt)
            {
                case MessageDelta { Data.Delta.Length: > 0 } delta:
                    yield return Data(new OpenAiChatChunk(id, created, model, [new OpenAiChunkChoice(0, new OpenAiDelta(Content: delta.Data.Delta), null)]),
                        ApexJsonContext.Default.OpenAiChatChunk);
                    break;
                case RunCompleted completed:
                    yield return Data(new OpenAiChatChunk(id, created, model, [new OpenAiChunkChoice(0, new OpenAiDelta(), "stop")]), ApexJsonContext.Default.OpenAiChatChunk);
                    if (includeUsage)
                        yield return Data(new OpenAiChatChunk(id, created, model, [], ChatUsage(completed.Data.Usage) ?? new OpenAiUsage(0, 0, 0)), ApexJsonContext.Default.OpenAiChatChunk);
                    yield return new SseItem<string>("[DONE]");
                    break;
                case RunFailed or RunCancelled:
                    yield return Data(new OpenAiErrorBody(RunErrorOf(evt)), ApexJsonContext.Default.OpenAiErrorBody);
                    break;
            }
        }
    }

    private static async Task<Results<ServerSentEventsResult<string>, JsonHttpResult<OpenAiResponse>, JsonHttpResult<OpenAiErrorBody>>> ResponsesAsync(HttpContext http, DoorRuns doors, TimeProvider time, CancellationToken cancellationToken)
    {
        var user = CurrentUser.From(http.User)!;
        if (await ReadAsync(http.Request, ApexJsonContext.Default.OpenAiResponseRequest, cancellationToken) is not { } request) return BadBody();
        var model = ModelOf(request.Model);
        List<EarlierTurn> turns = request.Instructions is { Length: > 0 } instructions ? [new EarlierTurn("system", instructions)] : [];
        turns.AddRange(InputTurns(request.Input));
        var started = await StartAsync(http, doors, user, turns, "input", model, cancellationToken);
        if (started is Start.Refused refused) return refused.Error;
        var run = ((Start.Running)started).Run;
        var response = new OpenAiResponse("resp_" + run.RunId, time.GetUtcNow().ToUnixTimeSeconds(), "in_progress", model, []);
        var events = doors.FollowAsync(user.Id, run, cancellationToken);
        if (request.Stream == true) return TypedResults.ServerSentEvents(ResponseEventsAsync(response, events, user.Id, doors, cancellationToken));

        var terminal = await TerminalAsync(events);
        if (terminal is not RunCompleted completed) return RunError(http, terminal);
        return TypedResults.Json(Completed(response, completed, await doors.AnswerAsync(user.Id, completed, cancellationToken)), ApexJsonContext.Default.OpenAiResponse);
    }

    private static async IAsyncEnumerable<SseItem<string>> ResponseEventsAsync(OpenAiResponse response, IAsyncEnumerable<ApexEvent> events, string userId, DoorRuns doors,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var sequence = 0;
        var itemId = "msg_" + response.Id["resp_".Length..];
        var opened = false;
        yield return Event(new OpenAiResponseCreated(response) { SequenceNumber = sequence++ });
        await foreach (var evt in events.WithCancellation(cancellationToken))
        {
            if (evt is MessageDelta or RunCompleted && !opened)
            {
                opened = true;
                yield return Event(new OpenAiOutputItemAdded(0, new OpenAiOutputMessage(itemId, "in_progress", [])) { SequenceNumber = sequence++ });
                yield return Event(new OpenAiContentPartAdded(itemId, 0, 0, new OpenAiOutputText("")) { SequenceNumber = sequence++ });
            }
            switch (evt)
            {
                case MessageDelta { Data.Delta.Length: > 0 } delta:
                    yield return Event(new OpenAiOutputTextDelta(itemId, 0, 0, delta.Data.Delta) { SequenceNumber = sequence++ });
                    break;
                case RunCompleted completed:
                    var done = Completed(response, completed, await doors.AnswerAsync(userId, completed, cancellationToken));
                    var text = done.Output[0].Content[0];
                    yield return Event(new OpenAiOutputTextDone(itemId, 0, 0, text.Text) { SequenceNumber = sequence++ });
                    yield return Event(new OpenAiContentPartDone(itemId, 0, 0, text) { SequenceNumber = sequence++ });
                    yield return Event(new OpenAiOutputItemDone(0, done.Output[0]) { SequenceNumber = sequence++ });
                    yield return Event(new OpenAiResponseCompleted(done) { SequenceNumber = sequence++ });
                    break;
                case RunFailed or RunCancelled:
                    var error = RunErrorOf(evt);
                    yield return Event(new OpenAiResponseFailed(response with { Status = "failed", Error = new OpenAiResponseError(error.Code!, error.Message) })
                        { SequenceNumber = sequence++ });
                    break;
            }
        }

        static SseItem<string> Event(OpenAiResponseEvent e) => new(JsonSerializer.Serialize(e, ApexJsonContext.Default.OpenAiResponseEvent), e.EventName);
    }

    private static OpenAiResponse Completed(OpenAiResponse response, RunCompleted completed, string answer) => response with
    {
        Status = "completed",
        Output = [new OpenAiOutputMessage("msg_" + response.Id["resp_".Length..], "completed", [new OpenAiOutputText(answer)])],
        Usage = completed.Data.Usage is { } u ? new OpenAiResponseUsage(u.InputTokens, u.OutputTokens, u.InputTokens + u.OutputTokens) : null,
    };

    /// <summary>The Responses API's <c>input</c>: a string, or a list of messages (<c>{ role, content }</c>, with or without <c>type: "message"</c>).</summary>
    private static IEnumerable<EarlierTurn> InputTurns(JsonElement? input)
    {
        if (input is { ValueKind: JsonValueKind.String } text)
        {
            yield return new EarlierTurn("user", text.GetString()!.Trim());
            yield break;
        }
        if (input is not { ValueKind: JsonValueKind.Array } items) yield break;
        foreach (var item in items.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object || !item.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String) continue;
            yield return new EarlierTurn(role.GetString()!, DoorRuns.TextOf(item.TryGetProperty("content", out var content) ? content : null));
        }
    }

    /// <summary>Submits the conversation's last user message with the turns before it, and names the run in the response headers.</summary>
    private static async Task<Start> StartAsync(HttpContext http, DoorRuns doors, CurrentUser user, List<EarlierTurn> turns, string param, string model,
        CancellationToken cancellationToken)
    {
        var last = turns.FindLastIndex(t => t.Role == "user" && t.Text.Length > 0);
        if (last < 0) return new Start.Refused(Error(StatusCodes.Status400BadRequest, $"'{param}' must hold a user message with text.", "invalid_value", param));
        string? threadId = null;
        if (http.Request.Headers[ThreadHeader].ToString() is { Length: > 0 } requested)
        {
            if (!await doors.OwnsThreadAsync(user.Id, requested, cancellationToken))
                return new Start.Refused(Error(StatusCodes.Status404NotFound, $"No thread '{requested}' (from the {ThreadHeader} header).", "thread_not_found", ThreadHeader));
            threadId = requested;
        }
        var earlier = turns.Take(last).Where(t => t.Role is "user" or "assistant" or "system" or "developer" && t.Text.Length > 0).ToList();
        // The model apex is the shipped team whatever its definition file calls it.
        switch (await doors.SubmitAsync(user.Id, threadId, turns[last].Text, earlier, model == ModelId ? null : model, cancellationToken))
        {
            case DoorSubmission.Started started:
                http.Response.Headers[ThreadHeader] = started.Run.ThreadId;
                http.Response.Headers[RunHeader] = started.Run.RunId;
                return new Start.Running(started.Run);
            case DoorSubmission.Refused { Code: "not_found" } when model != ModelId:
                // Another user's agent is a model that does not exist.
                return new Start.Refused(Error(StatusCodes.Status404NotFound, $"The model '{model}' does not exist; GET /v1/models lists the ones you may use.", "model_not_found", "model"));
            case DoorSubmission.Refused refused:
                return new Start.Refused(Error(DoorRuns.StatusFor(refused.Code), refused.Message, refused.Code));
            default:
                throw new InvalidOperationException("DoorSubmission is a closed type.");
        }
    }

    /// <summary>The model a request names: an agent or team of the user's (or a shared one) by name or id; none is the shipped team.</summary>
    private static string ModelOf(string? model) => model is { Length: > 0 } ? model : ModelId;

    private static OpenAiUsage? ChatUsage(RunUsageSummary? usage) =>
        usage is null ? null : new OpenAiUsage(usage.InputTokens, usage.OutputTokens, usage.InputTokens + usage.OutputTokens);

    private static OpenAiError RunErrorOf(ApexEvent terminal) => terminal switch
    {
        RunFailed failed => new OpenAiError($"The run failed ({failed.Data.Reason}): {failed.Data.Message}", "server_error", null, "run_failed"),
        RunCancelled cancelled => new OpenAiError($"The run was cancelled ({cancelled.Data.Reason}).", "server_error", null, "run_cancelled"),
        _ => throw new ArgumentException("Not a failed or cancelled run's event.", nameof(terminal)),
    };

    /// <summary>The run's terminal event, or null when its events end without one.</summary>
    private static async Task<ApexEvent?> TerminalAsync(IAsyncEnumerable<ApexEvent> events)
    {
        ApexEvent? last = null;
        await foreach (var evt in events) last = evt;
        return last is { IsTerminal: true } ? last : null;
    }

    /// <summary>A run that failed or was cancelled: a server error, marked not to be retried (a retry would be a new run).</summary>
    private static JsonHttpResult<OpenAiErrorBody> RunError(HttpContext http, ApexEvent? terminal)
    {
        http.Response.Headers["x-should-retry"] = "false";
        if (terminal is null) return Error(StatusCodes.Status500InternalServerError, "The run's events ended before its terminal event.", "run_lost");
        var error = RunErrorOf(terminal);
        return TypedResults.Json(new OpenAiErrorBody(error), ApexJsonContext.Default.OpenAiErrorBody,
            statusCode: terminal is RunCancelled ? StatusCodes.Status409Conflict : StatusCodes.Status500InternalServerError);
    }

    private static JsonHttpResult<OpenAiErrorBody> BadBody() => Error(StatusCodes.Status400BadRequest, "The request body is not valid JSON of this endpoint's shape.", "invalid_json");

    private static JsonHttpResult<OpenAiErrorBody> Error(int status, string message, string code, string? param = null) =>
        TypedResults.Json(new OpenAiErrorBody(new OpenAiError(message, status switch
        {
            StatusCodes.Status401Unauthorized => "invalid_request_error",
            StatusCodes.Status404NotFound => "invalid_request_error",
            StatusCodes.Status429TooManyRequests => "rate_limit_error",
            >= 500 => "server_error",
            _ => "invalid_request_error",
        }, param, code)), ApexJsonContext.Default.OpenAiErrorBody, statusCode: status);

    private static async Task<T?> ReadAsync<T>(HttpRequest request, JsonTypeInfo<T> type, CancellationToken cancellationToken) where T : class
    {
        try
        {
            return await JsonSerializer.DeserializeAsync(request.Body, type, cancellationToken);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static SseItem<string> Data<T>(T value, JsonTypeInfo<T> type) => new(JsonSerializer.Serialize(value, type));

    /// <summary>What became of a request's submission: a run, or the OpenAI-shaped error to answer.</summary>
    private abstract record Start
    {
        private Start() { }

        public sealed record Running(DoorRun Run) : Start;

        public sealed record Refused(JsonHttpResult<OpenAiErrorBody> Error) : Start;
    }
}
