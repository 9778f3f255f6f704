using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Apex.Client;
using Apex.Server.Streaming;
using Apex.Tests.Infrastructure;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Apex.Tests.Auth;

/// <summary>
/// The authorization matrix, generated from the server's own route table and <c>/ws</c> handler table: every route and
/// every frame type, called as anonymous, as another user with the owner's ids and with random ids, and as the owner.
/// A route or frame type that no rule here covers fails the test by name, so a new one cannot be forgotten.
/// </summary>
public sealed class AuthorizationMatrixTests(LoggedServer shared, ITestOutputHelper output) : IClassFixture<LoggedServer>
{
    private ApexTestServer Server => shared.Server;

    private Uri SocketUri => new UriBuilder(new Uri(Server.BaseAddress, "ws")) { Scheme = "ws" }.Uri;

    /// <summary>The only routes that answer without a credential. A route anonymous callers can use that is not listed fails.</summary>
    private static readonly HashSet<string> PublicRoutes = new(StringComparer.Ordinal)
    {
        "GET /healthz", "GET /readyz", "POST /api/auth/register", "POST /api/auth/login", "POST /api/auth/refresh",
        "GET /openapi/{documentName}.json", "GET /metrics",
    };

    /// <summary>Route parameters that name a resource of the owner's: filled with the owner's id, then with ids that do not exist.</summary>
    private static readonly Dictionary<string, Func<Ids, string>> OwnedParameters = new(StringComparer.Ordinal)
    {
        ["threadId"] = ids => ids.ThreadId,
        ["runId"] = ids => ids.RunId,
        ["keyId"] = ids => ids.KeyId,
        ["agentId"] = ids => ids.AgentId,
        ["teamId"] = ids => ids.TeamId,
        ["callId"] = ids => ids.CallId,
    };

    private const string AgentDefinition = """{"name":"matrix-agent","instructions":"Read the workload.","tools":["workload_summary"]}""";
    /// <summary>The owner's run is this agent's: its cost_breakdown call waited for approval, and the owner approved it.</summary>
    private const string GatedDefinition = """
        {"name":"matrix-gated","instructions":"Read the workload and its cost.","tools":["workload_summary","cost_breakdown"],"approval":{"required":["cost_breakdown"]}}
        """;
    private const string TeamDefinition = """
        {"name":"matrix-team","agents":[{"name":"reader","instructions":"Read the workload.","tools":["workload_summary"]}],"supervisor":{"policy":"sequence"}}
        """;

    /// <summary>Route parameters that name no one's resource.</summary>
    /// <remarks><c>userId</c> appears only in admin routes, which answer 403 to every non-admin whatever it names (the admin's own column is AdminTests').</remarks>
    private static readonly Dictionary<string, string> FixedParameters = new(StringComparer.Ordinal) { ["documentName"] = "v1", ["userId"] = "someone" };

    /// <summary>
    /// How to call the routes that need more than their path: a valid body (so the refusal tested is the owner check, not
    /// the body's), an id carried in a header, what a caller without the id is answered, and when the call must come last
    /// (it deletes the resource, or ends the caller's session). A route not listed is called without a body. /mcp and /api/agui
    /// carry the thread id in their body: another user's is answered as a missing one (a tool error; a new thread of the caller's).
    /// </summary>
    private static readonly Dictionary<string, Spec> Specs = new(StringComparer.Ordinal)
    {
        ["POST /api/threads"] = new(_ => Json("{}")),
        ["PATCH /api/threads/{threadId}"] = new(_ => Json("""{"title":"renamed by the matrix"}""")),
        ["DELETE /api/threads/{threadId}"] = new(Phase: Phase.Deletes),
        ["DELETE /api/keys/{keyId}"] = new(Phase: Phase.Deletes),
        ["DELETE /api/workloads"] = new(Phase: Phase.Deletes),
        ["POST /api/auth/logout"] = new(Phase: Phase.EndsSession),
        ["POST /api/keys"] = new(_ => Json("""{"name":"matrix"}""")),
        ["POST /api/agents"] = new(_ => Json(AgentDefinition.Replace("matrix-agent", "matrix-agent-2", StringComparison.Ordinal))),
        ["PUT /api/agents/{agentId}"] = new(_ => Json(AgentDefinition)),
        ["DELETE /api/agents/{agentId}"] = new(Phase: Phase.Deletes),
        ["POST /api/teams"] = new(_ => Json(TeamDefinition.Replace("matrix-team", "matrix-team-2", StringComparison.Ordinal))),
        ["PUT /api/teams/{teamId}"] = new(_ => Json(TeamDefinition)),
        ["DELETE /api/teams/{teamId}"] = new(Phase: Phase.Deletes),
        ["POST /api/threads/{threadId}/messages"] = new(_ => Json("""{"content":"a message from the matrix"}""")),
        // The owner's approval was answered already: the owner hears 409, anyone else the 404 of a missing one.
        ["POST /api/runs/{runId}/approvals/{callId}"] = new(_ => Json("""{"decision":"approve"}""")),
        ["POST /api/workloads"] = new(_ => new StringContent(UsageCsv("matrix-model"), Encoding.UTF8, "text/csv")),
        ["POST /api/workloads/sample"] = new(_ => Json("""{"days":1,"calls_per_day":5}""")),
        // ask_apex with a thread id: another user's thread is answered as one that does not exist (a tool error, in a 200).
        ["POST /mcp"] = new(thread => Json($$$$"""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ask_apex","arguments":{"question":"hello","thread_id":"{{{{thread}}}}"}}}""")),
        // A threadId the caller does not have starts a new thread of the caller's (README, AG-UI).
        ["POST /api/agui"] = new(thread => Json($$"""{"threadId":"{{thread}}","runId":"r1","messages":[{"id":"m1","role":"user","content":"hello"}]}""")),
        ["POST /v1/chat/completions"] = new(_ => Json("""{"model":"apex","messages":[{"role":"user","content":"hello"}]}"""), ThreadHeader: true),
        ["POST /v1/responses"] = new(_ => Json("""{"model":"apex","input":"hello"}"""), ThreadHeader: true),
    };

    [Fact]
    public async Task EveryRouteAnswersAnonymousAnotherUserAndTheOwnerAsItsRuleSays()
    {
        var ct = Waits.Timeout(120);
        var owner = await OwnerAsync(ct);
        using var other = await Server.NewUserAsync();
        var otherId = (await other.MeAsync(ct)).Id;
        var otherKey = await other.CreateApiKeyAsync("other's key", cancellationToken: ct);
        using var http = new HttpClient { BaseAddress = Server.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        var failures = new List<string>();
        var routes = Routes(failures);
        var errorsBefore = shared.Log.Errors.Count();

        // Anonymous, and with a bearer the server never issued.
        foreach (var route in routes)
            foreach (var bearer in new[] { null, "apex_forged0000000000000000000000000000" })
                await AnonymousAsync(http, route, bearer, owner, failures, ct);

        // The web app's static files are not routes (static file middleware) but public too; a path nothing serves is a 404.
        foreach (var (path, status) in new[] { ("/", 200), ("/index.html", 200), ("/no-such-file.js", 404) })
        {
            var answer = await SendAsync(http, null, "GET", path, null, null, ct);
            if (answer.Status != status) failures.Add($"GET {path} as anonymous answered {answer.Status}, expected {status}");
        }

        // An API key is the same credential as the owner's token; another user's key gets nothing of the owner's.
        await ApiKeySampleAsync(http, routes, owner, otherKey.Key, failures, ct);

        // Another user: with the owner's ids, then with ids that exist nowhere.
        foreach (var (route, ids) in Ordered(routes, [IdKind.Owners, IdKind.Random]))
            await CallAsync(http, other.Tokens!.AccessToken, otherId, route, ids, owner, isOwner: false, failures, ct);
        await OwnerDataIsUntouchedAsync(owner, failures, ct);

        // The owner: ids that do not exist, then its own.
        foreach (var (route, ids) in Ordered(routes, [IdKind.Random, IdKind.Owners]))
            await CallAsync(http, owner.Client.Tokens!.AccessToken, owner.UserId, route, ids, owner, isOwner: true, failures, ct);

        failures.AddRange(shared.Log.Errors.Skip(errorsBefore).Select(e => "server log: " + e));
        output.WriteLine($"{routes.Count} routes: {string.Join(", ", routes)}");
        Assert.True(failures.Count == 0, $"{failures.Count} cell(s) of the matrix failed:\n" + string.Join("\n", failures));
        owner.Client.Dispose();
    }

    [Fact]
    public async Task EverySocketFrameTypeRefusesAnotherUsersIdsAndAnswersTheOwner()
    {
        var ct = Waits.Timeout(120);
        var owner = await OwnerAsync(ct);
        using var other = await Server.NewUserAsync();
        var frameTypes = Server.Services.GetRequiredService<ClientProtocol>().FrameTypes;
        var failures = new List<string>();
        var errorsBefore = shared.Log.Errors.Count();
        foreach (var type in frameTypes.Where(t => !Frames.ContainsKey(t)))
            failures.Add($"/ws frame type '{type}' is not covered by the matrix: add it to Frames");
        Assert.Contains("user_message", frameTypes);

        // One socket of the other user sends every frame type with the owner's ids, then with random ones.
        using var intruder = await other.ConnectAsync(ct);
        var seen = new List<ApexEvent>();
        foreach (var type in frameTypes.Where(Frames.ContainsKey))
        {
            foreach (var ids in new[] { owner.Ids, Owner.RandomIds() })
            {
                await intruder.SendRawAsync(Encoding.UTF8.GetBytes(Frame(type, Frames[type].Payload(ids))), ct);
                var answer = await intruder.ReceiveAsync(ct);
                if (answer is not null) seen.Add(answer);
                var expected = Frames[type].Refusal;
                var got = answer switch { ErrorFrame e => "error " + e.Data.Code, null => "a closed socket", _ => answer.Type };
                if (got != expected) failures.Add($"/ws '{type}' from another user with {(ids == owner.Ids ? "the owner's" : "random")} ids answered {got}, expected {expected}");
            }
        }

        // The owner gets each frame's normal answer, on a socket of its own.
        foreach (var type in frameTypes.Where(Frames.ContainsKey))
        {
            using var socket = await owner.Client.ConnectAsync(ct);
            await socket.SendRawAsync(Encoding.UTF8.GetBytes(Frame(type, Frames[type].Payload(owner.Ids))), ct);
            var answer = await socket.ReceiveAsync(ct);
            if (answer is null || !Frames[type].OwnerAnswer(answer, owner))
                failures.Add($"/ws '{type}' from the owner answered {Describe(answer)}");
        }

        // A run on the owner's thread now: had any frame made the intruder follow it, its events would arrive before this pong.
        using (var ownerSocket = await owner.Client.ConnectAsync(ct))
            await ownerSocket.RunToEndAsync("one more", owner.ThreadId, ct);
        await intruder.SendFrameAsync(new ClientFrame("ping"), ct);
        seen.AddRange(await intruder.ReceiveUntilAsync(e => e is Pong, ct));
        foreach (var evt in seen.Where(e => e.ThreadId == owner.ThreadId || e.RunId == owner.RunId || e.UserId == owner.UserId))
            failures.Add($"the other user's socket received the owner's {evt.Type}");

        failures.AddRange(shared.Log.Errors.Skip(errorsBefore).Select(e => "server log: " + e));
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        owner.Client.Dispose();
    }

    /// <summary>
    /// Every client frame type: its payload naming the owner's resources, the answer another user gets, and what the owner's
    /// normal answer looks like. A frame type of <see cref="ClientProtocol"/> missing here fails the socket matrix.
    /// </summary>
    private static readonly Dictionary<string, FrameSpec> Frames = new(StringComparer.Ordinal)
    {
        ["user_message"] = new(ids => $$"""{"content":"hello","thread_id":"{{ids.ThreadId}}"}""", "error not_found",
            (e, a) => e is ThreadFollowed f && f.Data.ThreadId == a.ThreadId),
        ["start_agent"] = new(ids => $$"""{"content":"hello","thread_id":"{{ids.ThreadId}}"}""", "error not_found",
            (e, a) => e is ThreadFollowed f && f.Data.ThreadId == a.ThreadId),
        // The owner's run has ended: its documented answer is run_finished.
        ["stop_agent"] = new(ids => $$"""{"run_id":"{{ids.RunId}}"}""", "error not_found", (e, _) => e is ErrorFrame { Data.Code: "run_finished" }),
        ["resume"] = new(ids => $$"""{"thread_id":"{{ids.ThreadId}}","after_seq":0}""", "error not_found",
            (e, a) => e is ThreadFollowed f && f.Data.ThreadId == a.ThreadId),
        ["get_thread_history"] = new(ids => $$"""{"thread_id":"{{ids.ThreadId}}"}""", "error not_found",
            (e, a) => e is ThreadHistory h && h.Data.Thread.Id == a.ThreadId && h.Data.Runs.Any(r => r.Id == a.RunId)),
        ["switch_thread"] = new(ids => $$"""{"thread_id":"{{ids.ThreadId}}"}""", "error not_found",
            (e, a) => e is ThreadFollowed f && f.Data.ThreadId == a.ThreadId),
        // Another user's token on a socket is refused; the socket keeps its own credential.
        ["reauth"] = new(ids => $$"""{"token":"{{ids.Token}}"}""", "error unauthorized", (e, _) => e is Reauthenticated),
        ["ping"] = new(_ => "{}", "pong", (e, _) => e is Pong),
        // The owner's approval was answered already: its documented answer is already_decided.
        ["approve_tool"] = new(ids => $$"""{"run_id":"{{ids.RunId}}","call_id":"{{ids.CallId}}"}""", "error not_found", (e, _) => e is ErrorFrame { Data.Code: "already_decided" }),
        ["reject_tool"] = new(ids => $$"""{"run_id":"{{ids.RunId}}","call_id":"{{ids.CallId}}","reason":"no"}""", "error not_found",
            (e, _) => e is ErrorFrame { Data.Code: "already_decided" }),
    };

    private async Task AnonymousAsync(HttpClient http, Route route, string? bearer, Owner owner, List<string> failures, CancellationToken ct)
    {
        var who = bearer is null ? "anonymous" : "a forged bearer";
        if (route.Rule == Rule.Socket)
        {
            // A socket without a credential is accepted and closed with 1008 (the protocol's 401); plain HTTP is a 400.
            var plain = await SendAsync(http, bearer, "GET", route.Path(owner.Ids), null, null, ct);
            if (plain.Status != 400) failures.Add($"{route} as {who} over plain HTTP answered {plain.Status}, expected 400");
            using var socket = new ClientWebSocket();
            if (bearer is not null) socket.Options.SetRequestHeader("Authorization", "Bearer " + bearer);
            await socket.ConnectAsync(SocketUri, ct);
            var result = await socket.ReceiveAsync(new byte[1024], ct);
            if (result.MessageType != WebSocketMessageType.Close || socket.CloseStatus != WebSocketCloseStatus.PolicyViolation)
                failures.Add($"{route} as {who} was not closed with 1008 (got {result.MessageType} {socket.CloseStatus})");
            return;
        }
        var answer = await SendAsync(http, bearer, route.Method, route.Path(owner.Ids), route.Spec.Body?.Invoke(owner.ThreadId), route.Spec.ThreadHeader ? owner.ThreadId : null, ct);
        NeverAServerError(route, who, answer, failures);
        NoneOfTheOwners(route, who, answer, owner, [], failures);
        switch (route.Rule)
        {
            case Rule.Public when answer.Status == 401:
                failures.Add($"{route} is public but answered {who} 401");
                break;
            case Rule.OpenAi when answer.Status != 401 || !OpenAiError(answer.Body, "invalid_api_key"):
                failures.Add($"{route} as {who} answered {answer.Status} {Short(answer.Body)}, expected 401 in OpenAI's shape (invalid_api_key)");
                break;
            case Rule.Admin or Rule.SignedIn when answer.Status != 401:
                failures.Add($"{route} as {who} answered {answer.Status}, expected 401 (add it to PublicRoutes only if it is meant to be public)");
                break;
        }
    }

    private async Task CallAsync(HttpClient http, string bearer, string userId, Route route, IdKind kind, Owner owner, bool isOwner, List<string> failures, CancellationToken ct)
    {
        var who = $"{(isOwner ? "the owner" : "another user")} with {(kind == IdKind.Owners ? "the owner's" : "random")} ids";
        var ids = kind == IdKind.Owners ? owner.Ids : Owner.RandomIds();
        if (route.Rule == Rule.Socket)
        {
            using var raw = new ClientWebSocket();
            raw.Options.SetRequestHeader("Authorization", "Bearer " + bearer);
            await raw.ConnectAsync(SocketUri, ct);
            using var socket = new ApexSocket(raw);
            if (await socket.ReceiveAsync(ct) is not ConnectionEstablished established || established.Data.UserId != userId)
                failures.Add($"{route} as {who} did not connect as the caller");
            return;
        }
        var path = route.Path(ids);
        var answer = await SendAsync(http, bearer, route.Method, path, route.Spec.Body?.Invoke(ids.ThreadId), route.Spec.ThreadHeader ? ids.ThreadId : null, ct);
        NeverAServerError(route, who, answer, failures);
        if (!isOwner) NoneOfTheOwners(route, who, answer, owner, [path, ids.ThreadId], failures);
        // Whoever asks for an id that is not theirs hears what a missing id gets.
        var namesAnId = route.OwnsIds || route.Spec.ThreadHeader;
        var notTheirs = namesAnId && (kind == IdKind.Random || !isOwner);
        if (route.Rule == Rule.Admin)
        {
            if (answer.Status != 403) failures.Add($"{route} as {who} answered {answer.Status}, expected 403 (admin only)");
        }
        else if (notTheirs && answer.Status != 404)
            failures.Add($"{route} as {who} answered {answer.Status} {Short(answer.Body)}, expected 404 (exactly like a missing id)");
        else if (!notTheirs && answer.Status is 401 or 403 or 404 or 405)
            failures.Add($"{route} as {who} answered {answer.Status} {Short(answer.Body)}: the caller's own call must be served");
        else if (!notTheirs && route.Method == "GET" && answer.Status is < 200 or > 299)
            failures.Add($"{route} as {who} answered {answer.Status} {Short(answer.Body)}, expected a 2xx");
    }

    private static async Task ApiKeySampleAsync(HttpClient http, List<Route> routes, Owner owner, string otherKey, List<string> failures, CancellationToken ct)
    {
        var sample = routes.Where(r => r.Method == "GET" && r.Rule == Rule.SignedIn && !r.Pattern.EndsWith("/events", StringComparison.Ordinal)).ToList();
        Assert.True(sample.Count >= 8, $"only {sample.Count} GET routes to compare");
        foreach (var route in sample)
        {
            var path = route.Path(owner.Ids);
            var token = await SendAsync(http, owner.Client.Tokens!.AccessToken, "GET", path, null, null, ct);
            var key = await SendAsync(http, owner.ApiKey, "GET", path, null, null, ct);
            if (token.Status != key.Status || (token.Status == 200 && !SameJson(token.Body, key.Body)))
                failures.Add($"{route} with the owner's API key answered {key.Status} {Short(key.Body)}; with its token {token.Status} {Short(token.Body)}");
            if (!route.OwnsIds) continue;
            var stranger = await SendAsync(http, otherKey, "GET", path, null, null, ct);
            if (stranger.Status != 404) failures.Add($"{route} with another user's API key and the owner's ids answered {stranger.Status}, expected 404");
            NoneOfTheOwners(route, "another user's API key", stranger, owner, [path], failures);
        }
    }

    /// <summary>After another user called every route with the owner's ids, the owner's data is as it was.</summary>
    private static async Task OwnerDataIsUntouchedAsync(Owner owner, List<string> failures, CancellationToken ct)
    {
        var thread = await owner.Client.GetThreadAsync(owner.ThreadId, ct);
        if (thread.Title != owner.Title) failures.Add($"another user renamed the owner's thread to '{thread.Title}'");
        var messages = await owner.Client.ListMessagesAsync(owner.ThreadId, cancellationToken: ct);
        if (messages.Items.Count != 2) failures.Add($"the owner's thread has {messages.Items.Count} messages after another user's calls, expected 2");
        var run = await owner.Client.GetRunAsync(owner.RunId, ct);
        if (run.Status != "completed") failures.Add($"the owner's run is {run.Status} after another user's calls");
        var keys = await owner.Client.ListApiKeysAsync(ct);
        if (!keys.Items.Any(k => k.Id == owner.KeyId)) failures.Add("another user deleted the owner's API key");
        using var summary = await owner.Client.Http.SendAsync(owner.Client.Authorized(HttpMethod.Get, "api/workloads"), ct);
        var calls = JsonDocument.Parse(await summary.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("calls").GetInt64();
        if (calls != 3) failures.Add($"the owner's workload holds {calls} calls after another user's calls, expected 3");
    }

    /// <summary>The route table, each route with its rule; a route no rule knows how to call is a failure naming it.</summary>
    private List<Route> Routes(List<string> failures)
    {
        var endpoints = Server.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().ToList();
        var routes = new List<Route>();
        foreach (var endpoint in endpoints)
        {
            var pattern = endpoint.RoutePattern;
            var raw = "/" + (pattern.RawText ?? "").Trim('/');
            var unknown = pattern.Parameters.Select(p => p.Name).Where(n => !OwnedParameters.ContainsKey(n) && !FixedParameters.ContainsKey(n)).ToList();
            if (unknown.Count > 0)
            {
                failures.Add($"{endpoint.DisplayName}: route parameter(s) {string.Join(", ", unknown)} not in OwnedParameters or FixedParameters");
                continue;
            }
            var methods = endpoint.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods;
            if (methods is null)
            {
                // Any method: the socket, and the Prometheus scraping endpoint (mapped by OpenTelemetry), are called with GET.
                if (raw == "/ws") routes.Add(new Route("GET", raw, pattern, Rule.Socket, new Spec()));
                else if (raw == "/metrics") routes.Add(new Route("GET", raw, pattern, Rule.Public, new Spec()));
                else failures.Add($"{endpoint.DisplayName}: answers any method; the matrix does not know how to call it");
                continue;
            }
            foreach (var method in methods)
            {
                if (method is not ("GET" or "POST" or "PUT" or "PATCH" or "DELETE"))
                {
                    failures.Add($"{method} {raw}: the matrix does not know how to call {method}");
                    continue;
                }
                var key = $"{method} {raw}";
                var rule = PublicRoutes.Contains(key) ? Rule.Public
                    : raw.StartsWith("/v1/", StringComparison.Ordinal) ? Rule.OpenAi
                    : raw.StartsWith("/api/admin", StringComparison.Ordinal) ? Rule.Admin
                    : Rule.SignedIn;
                routes.Add(new Route(method, raw, pattern, rule, Specs.GetValueOrDefault(key) ?? new Spec()));
            }
        }
        // The table really is the server's: these must be in it, and every listed public route and spec must still exist.
        foreach (var expected in new[] { "GET /api/threads/{threadId}", "POST /api/runs/{runId}/cancel", "DELETE /api/keys/{keyId}", "POST /mcp", "GET /ws", "GET /metrics" })
            if (!routes.Any(r => r.ToString() == expected)) failures.Add($"{expected} is not in the route table: {string.Join(", ", routes)}");
        foreach (var listed in PublicRoutes.Concat(Specs.Keys).Where(k => !routes.Any(r => r.ToString() == k)))
            failures.Add($"{listed} is listed in the matrix but is not in the route table");
        return routes;
    }

    private static IEnumerable<(Route Route, IdKind Ids)> Ordered(List<Route> routes, IdKind[] kinds) =>
        routes.SelectMany(r => kinds.Where(k => k == IdKind.Owners || r.OwnsIds || r.Spec.ThreadHeader || r.Spec.Body is not null).Select(k => (r, k)))
            .OrderBy(c => c.r.Spec.Phase).ThenBy(c => Array.IndexOf(kinds, c.k));

    private static async Task<Answer> SendAsync(HttpClient http, string? bearer, string method, string path, HttpContent? body, string? threadHeader, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = body };
        if (bearer is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        if (threadHeader is not null) request.Headers.Add("x-apex-thread-id", threadHeader);
        // /mcp answers only a client that accepts both.
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        // A thread's event stream stays open for live events: its status is the answer. The other streams end with their run.
        var endless = path.EndsWith("/events", StringComparison.Ordinal) && response.Content.Headers.ContentType?.MediaType == "text/event-stream";
        return new Answer((int)response.StatusCode, endless ? "" : await response.Content.ReadAsStringAsync(ct));
    }

    private static void NeverAServerError(Route route, string who, Answer answer, List<string> failures)
    {
        if (answer.Status >= 500) failures.Add($"{route} as {who} answered {answer.Status} {Short(answer.Body)}");
    }

    /// <summary>Nothing of the owner's in the answer, except what the caller sent itself.</summary>
    private static void NoneOfTheOwners(Route route, string who, Answer answer, Owner owner, string[] sent, List<string> failures)
    {
        foreach (var secret in owner.Secrets.Where(s => !sent.Any(x => x.Contains(s, StringComparison.Ordinal))))
            if (answer.Body.Contains(secret, StringComparison.Ordinal)) failures.Add($"{route} as {who} answered {answer.Status} with the owner's '{secret}'");
    }

    private static bool OpenAiError(string body, string code)
    {
        try
        {
            return JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("code").GetString() == code;
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return false;
        }
    }

    private static bool SameJson(string a, string b) =>
        JsonSerializer.Serialize(JsonDocument.Parse(a).RootElement) == JsonSerializer.Serialize(JsonDocument.Parse(b).RootElement);

    private static string Short(string body) => body.Length > 200 ? body[..200] + "…" : body;

    private static string Describe(ApexEvent? evt) => evt switch
    {
        null => "a closed socket",
        ErrorFrame e => $"error {e.Data.Code}: {e.Data.Message}",
        _ => evt.Type,
    };

    private static string Frame(string type, string payload) => $$"""{"type":"{{type}}","payload":{{payload}}}""";

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static string UsageCsv(string model) =>
        "timestamp,provider,model,prompt_tokens,completion_tokens,latency_ms,status\n" +
        string.Concat(Enumerable.Range(1, 3).Select(i => $"2026-11-0{i}T10:00:00Z,openai,{model},100,20,300,ok\n"));

    /// <summary>User A: a thread with a completed run and its two messages, an API key, workload rows of a model only A has.</summary>
    private async Task<Owner> OwnerAsync(CancellationToken ct)
    {
        var email = $"owner-{Guid.NewGuid():N}@example.com";
        var client = await Server.NewUserAsync(email);
        var me = await client.MeAsync(ct);
        var title = "Owner's secret plans " + Guid.NewGuid().ToString("N");
        var thread = await client.CreateThreadAsync(title, cancellationToken: ct);
        var content = "Owner's question " + Guid.NewGuid().ToString("N");
        await client.CreateAgentAsync(GatedDefinition, ct);
        var sent = await client.SendMessageAsync(thread.Id, content, null, "matrix-gated", ct);
        string? callId = null;
        await foreach (var evt in client.StreamEventsAsync(thread.Id, 0, cancellationToken: ct))
        {
            if (evt is ApprovalRequested requested && callId is null)
            {
                callId = requested.Data.CallId;
                await client.ApproveToolAsync(sent.Run.Id, callId, cancellationToken: ct);
            }
            if (evt.IsTerminal)
            {
                Assert.IsType<RunCompleted>(evt);
                break;
            }
        }
        Assert.NotNull(callId);
        var key = await client.CreateApiKeyAsync("owner's key", cancellationToken: ct);
        var model = "owner-model-" + Guid.NewGuid().ToString("N");
        var upload = await client.UploadWorkloadAsync(new MemoryStream(Encoding.UTF8.GetBytes(UsageCsv(model))), "text/csv", cancellationToken: ct);
        Assert.IsType<WorkloadUploadResult.Imported>(upload);
        var agent = await client.CreateAgentAsync(AgentDefinition, ct);
        using var teamBody = new StringContent(TeamDefinition, Encoding.UTF8, "application/json");
        using var teamAnswer = await client.Http.SendAsync(client.Authorized(HttpMethod.Post, "api/teams", teamBody), ct);
        Assert.Equal(System.Net.HttpStatusCode.Created, teamAnswer.StatusCode);
        var team = (await System.Net.Http.Json.HttpContentJsonExtensions.ReadFromJsonAsync(teamAnswer.Content, ApexJsonContext.Default.AgentDto, ct))!;
        return new Owner(client, me.Id, thread.Id, sent.Run.Id, callId, key.Id, key.Key, title, agent.Id, team.Id,
            [me.Id, email, thread.Id, sent.Run.Id, sent.Message.Id, key.Id, key.Key, key.Prefix, title, content, model, agent.Id, team.Id]);
    }

    private sealed record Owner(ApexClient Client, string UserId, string ThreadId, string RunId, string CallId, string KeyId, string ApiKey, string Title, string AgentId, string TeamId,
        string[] Secrets)
    {
        public Ids Ids { get; } = new(ThreadId, RunId, KeyId, Client.Tokens!.AccessToken, AgentId, TeamId, CallId);

        public static Ids RandomIds() => new(Guid.CreateVersion7().ToString(), "nope-" + Guid.NewGuid().ToString("N"), Guid.CreateVersion7().ToString(), "apex_" + Guid.NewGuid().ToString("N"),
            Guid.CreateVersion7().ToString(), Guid.CreateVersion7().ToString(), "call_nope_" + Guid.NewGuid().ToString("N"));
    }

    private sealed record Ids(string ThreadId, string RunId, string KeyId, string Token, string AgentId, string TeamId, string CallId);

    private sealed record Route(string Method, string Pattern, RoutePattern Parsed, Rule Rule, Spec Spec)
    {
        public bool OwnsIds => Parsed.Parameters.Any(p => OwnedParameters.ContainsKey(p.Name));

        public string Path(Ids ids) => "/" + string.Join('/', Parsed.PathSegments.Select(segment => string.Concat(segment.Parts.Select(part => part switch
        {
            RoutePatternLiteralPart literal => literal.Content,
            RoutePatternSeparatorPart separator => separator.Content,
            RoutePatternParameterPart p => Uri.EscapeDataString(OwnedParameters.TryGetValue(p.Name, out var id) ? id(ids) : FixedParameters[p.Name]),
            _ => throw new InvalidOperationException($"{Pattern}: unknown route part {part.GetType().Name}"),
        }))));

        public override string ToString() => $"{Method} {Pattern}";
    }

    private sealed record Spec(Func<string, HttpContent>? Body = null, bool ThreadHeader = false, Phase Phase = Phase.Normal);

    private sealed record FrameSpec(Func<Ids, string> Payload, string Refusal, Func<ApexEvent, Owner, bool> OwnerAnswer);

    private sealed record Answer(int Status, string Body);

    private enum Rule { Public, OpenAi, Socket, Admin, SignedIn }

    private enum Phase { Normal, Deletes, EndsSession }

    private enum IdKind { Owners, Random }
}
