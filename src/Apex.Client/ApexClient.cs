using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace Apex.Client;

/// <summary>An error answer from the server (a ProblemDetails body).</summary>
public sealed class ApexApiException(HttpStatusCode status, string body)
    : Exception($"The server answered {(int)status} {status}: {body}")
{
    /// <summary>The HTTP status code.</summary>
    public HttpStatusCode Status { get; } = status;
    /// <summary>The raw ProblemDetails body.</summary>
    public string Body { get; } = body;
}

/// <summary>
/// A typed client for the Apex HTTP API, its <c>/ws</c> socket and its SSE stream. One instance
/// holds one user's tokens; it is not meant to be shared between users.
/// </summary>
public sealed class ApexClient(HttpClient http) : IDisposable
{
    /// <summary>The underlying HTTP client; its <c>BaseAddress</c> is the server.</summary>
    public HttpClient Http { get; } = http;

    /// <summary>The tokens of the signed-in user, if any.</summary>
    public TokenResponse? Tokens { get; private set; }

    /// <summary>An API key to send instead of an access token (<see cref="UseApiKey"/>).</summary>
    public string? ApiKey { get; private set; }


    /// <summary>Creates an account and signs in as it.</summary>
    public async Task<TokenResponse> RegisterAsync(string email, string password, CancellationToken cancellationToken = default) =>
        SignedIn(await PostAsync("api/auth/register", new RegisterRequest(email, password), ApexJsonContext.Default.RegisterRequest, ApexJsonContext.Default.TokenResponse, cancellationToken));

    /// <summary>Signs in.</summary>
    public async Task<TokenResponse> LoginAsync(string email, string password, CancellationToken cancellationToken = default) =>
        SignedIn(await PostAsync("api/auth/login", new LoginRequest(email, password), ApexJsonContext.Default.LoginRequest, ApexJsonContext.Default.TokenResponse, cancellationToken));

    /// <summary>Exchanges the refresh token for new tokens.</summary>
    public async Task<TokenResponse> RefreshAsync(CancellationToken cancellationToken = default) =>
        SignedIn(await PostAsync("api/auth/refresh", new RefreshRequest(RequireTokens().RefreshToken), ApexJsonContext.Default.RefreshRequest, ApexJsonContext.Default.TokenResponse, cancellationToken));

    /// <summary>Signs out, revoking the session.</summary>
    public async Task LogoutAsync(CancellationToken cancellationToken = default)
    {
        using var response = await Http.SendAsync(Authorized(HttpMethod.Post, "api/auth/logout",
            JsonContent.Create(new RefreshRequest(RequireTokens().RefreshToken), ApexJsonContext.Default.RefreshRequest)), cancellationToken);
        await EnsureSuccessAsync(response, cancellationToken);
    }

    /// <summary>The signed-in user.</summary>
    public Task<UserDto> MeAsync(CancellationToken cancellationToken = default) =>
        GetAsync("api/auth/me", ApexJsonContext.Default.UserDto, cancellationToken);

    /// <summary>Creates an API key; its secret is in the answer only.</summary>
    public Task<CreatedApiKeyDto> CreateApiKeyAsync(string name, DateTimeOffset? expiresAt = null, CancellationToken cancellationToken = default) =>
        PostAsync("api/keys", new CreateApiKeyRequest(name, expiresAt), ApexJsonContext.Default.CreateApiKeyRequest, ApexJsonContext.Default.CreatedApiKeyDto, cancellationToken);

    /// <summary>Lists the user's API keys (without their secrets).</summary>
    public Task<Page<ApiKeyDto>> ListApiKeysAsync(CancellationToken cancellationToken = default) =>
        GetAsync("api/keys", ApexJsonContext.Default.PageApiKeyDto, cancellationToken);

    /// <summary>Deletes an API key; whatever it opened (sockets, SSE streams) is closed.</summary>
    public async Task DeleteApiKeyAsync(string keyId, CancellationToken cancellationToken = default)
    {
        using var response = await Http.SendAsync(Authorized(HttpMethod.Delete, $"api/keys/{Uri.EscapeDataString(keyId)}"), cancellationToken);
        await EnsureSuccessAsync(response, cancellationToken);
    }

    /// <summary>The account's security events, newest first.</summary>
    public Task<Page<SecurityEventDto>> ListSecurityEventsAsync(int limit = 50, string? cursor = null, CancellationToken cancellationToken = default) =>
        GetAsync($"api/auth/events?limit={limit}{CursorQuery(cursor)}", ApexJsonContext.Default.PageSecurityEventDto, cancellationToken);

    /// <summary>Creates a thread.</summary>
    public Task<ThreadDto> CreateThreadAsync(string? title = null, string? strategy = null, CancellationToken cancellationToken = default) =>
        PostAsync("api/threads", new CreateThreadRequest(title, strategy), ApexJsonContext.Default.CreateThreadRequest, ApexJsonContext.Default.ThreadDto, cancellationToken);

    /// <summary>Lists the user's threads, newest first.</summary>
    public Task<Page<ThreadDto>> ListThreadsAsync(int limit = 50, string? cursor = null, CancellationToken cancellationToken = default) =>
        GetAsync($"api/threads?limit={limit}{CursorQuery(cursor)}", ApexJsonContext.Default.PageThreadDto, cancellationToken);

    /// <summary>Reads one thread.</summary>
    public Task<ThreadDto> GetThreadAsync(string threadId, CancellationToken cancellationToken = default) =>
        GetAsync($"api/threads/{Uri.EscapeDataString(threadId)}", ApexJsonContext.Default.ThreadDto, cancellationToken);

    /// <summary>Deletes a thread with its messages, runs and events (its running runs are cancelled first).</summary>
    public async Task DeleteThreadAsync(string threadId, CancellationToken cancellationToken = default)
    {
        using var response = await Http.SendAsync(Authorized(HttpMethod.Delete, $"api/threads/{Uri.EscapeDataString(threadId)}"), cancellationToken);
        await EnsureSuccessAsync(response, cancellationToken);
    }

    /// <summary>Lists a thread's messages, oldest first.</summary>
    public Task<Page<MessageDto>> ListMessagesAsync(string threadId, int limit = 50, string? cursor = null, CancellationToken cancellationToken = default) =>
        GetAsync($"api/threads/{Uri.EscapeDataString(threadId)}/messages?limit={limit}{CursorQuery(cursor)}", ApexJsonContext.Default.PageMessageDto, cancellationToken);

    /// <summary>Lists a thread's runs, oldest first.</summary>
    public Task<Page<RunDto>> ListRunsAsync(string threadId, int limit = 50, string? cursor = null, CancellationToken cancellationToken = default) =>
        GetAsync($"api/threads/{Uri.EscapeDataString(threadId)}/runs?limit={limit}{CursorQuery(cursor)}", ApexJsonContext.Default.PageRunDto, cancellationToken);

    /// <summary>Reads one run.</summary>
    public Task<RunDto> GetRunAsync(string runId, CancellationToken cancellationToken = default) =>
        GetAsync($"api/runs/{Uri.EscapeDataString(runId)}", ApexJsonContext.Default.RunDto, cancellationToken);

    /// <summary>Sends a message over REST; the run's events arrive over <c>/ws</c> or SSE.</summary>
    public Task<SendMessageResponse> SendMessageAsync(string threadId, string content, string? strategy = null, CancellationToken cancellationToken = default) =>
        PostAsync($"api/threads/{Uri.EscapeDataString(threadId)}/messages", new SendMessageRequest(content, strategy),
            ApexJsonContext.Default.SendMessageRequest, ApexJsonContext.Default.SendMessageResponse, cancellationToken);

    /// <summary>Sends a message over REST to the agent or team <paramref name="agent"/> (id or name; null: the shipped team).</summary>
    public Task<SendMessageResponse> SendMessageAsync(string threadId, string content, string? strategy, string? agent, CancellationToken cancellationToken = default) =>
        PostAsync($"api/threads/{Uri.EscapeDataString(threadId)}/messages", new SendMessageRequest(content, strategy, agent),
            ApexJsonContext.Default.SendMessageRequest, ApexJsonContext.Default.SendMessageResponse, cancellationToken);

    /// <summary>The run's tool calls that wait or waited for approval, oldest first.</summary>
    public Task<IReadOnlyList<ApprovalDto>> ListApprovalsAsync(string runId, CancellationToken cancellationToken = default) =>
        GetAsync($"api/runs/{Uri.EscapeDataString(runId)}/approvals", ApexJsonContext.Default.IReadOnlyListApprovalDto, cancellationToken);

    /// <summary>Approves a tool call that waits, optionally with edited <paramref name="arguments"/> (a JSON object); the run resumes.</summary>
    public Task<ApprovalDto> ApproveToolAsync(string runId, string callId, JsonElement? arguments = null, CancellationToken cancellationToken = default) =>
        DecideAsync(runId, callId, new ApprovalDecisionRequest("approve", arguments), cancellationToken);

    /// <summary>Rejects a tool call that waits; the model is told, with <paramref name="reason"/> when given.</summary>
    public Task<ApprovalDto> RejectToolAsync(string runId, string callId, string? reason = null, CancellationToken cancellationToken = default) =>
        DecideAsync(runId, callId, new ApprovalDecisionRequest("reject", null, reason), cancellationToken);

    private Task<ApprovalDto> DecideAsync(string runId, string callId, ApprovalDecisionRequest request, CancellationToken cancellationToken) =>
        PostAsync($"api/runs/{Uri.EscapeDataString(runId)}/approvals/{Uri.EscapeDataString(callId)}", request, ApexJsonContext.Default.ApprovalDecisionRequest,
            ApexJsonContext.Default.ApprovalDto, cancellationToken);

    /// <summary>Defines an agent of the user's own (the JSON of <c>POST /api/agents</c>).</summary>
    public async Task<AgentDto> CreateAgentAsync(string definitionJson, CancellationToken cancellationToken = default)
    {
        using var body = new StringContent(definitionJson, System.Text.Encoding.UTF8, "application/json");
        using var response = await Http.SendAsync(Authorized(HttpMethod.Post, "api/agents", body), cancellationToken);
        await EnsureSuccessAsync(response, cancellationToken);
        return (await response.Content.ReadFromJsonAsync(ApexJsonContext.Default.AgentDto, cancellationToken))!;
    }

    /// <summary>Issues a single-use ticket for <c>/ws</c>.</summary>
    public async Task<string> GetWsTicketAsync(CancellationToken cancellationToken = default)
    {
        using var response = await Http.SendAsync(Authorized(HttpMethod.Post, "api/ws-ticket"), cancellationToken);
        await EnsureSuccessAsync(response, cancellationToken);
        var ticket = await response.Content.ReadFromJsonAsync(ApexJsonContext.Default.WsTicketResponse, cancellationToken);
        return ticket!.Ticket;
    }

    /// <summary>Cancels a run: a queued one ends at once, a running one is told to stop wherever it executes (its
    /// <c>run_cancelled</c> follows on the thread). Cancelling a finished run is a 409 <see cref="ApexApiException"/>.</summary>
    public async Task<RunDto> CancelRunAsync(string runId, CancellationToken cancellationToken = default)
    {
        using var response = await Http.SendAsync(Authorized(HttpMethod.Post, $"api/runs/{Uri.EscapeDataString(runId)}/cancel"), cancellationToken);
        await EnsureSuccessAsync(response, cancellationToken);
        return (await response.Content.ReadFromJsonAsync(ApexJsonContext.Default.RunDto, cancellationToken))!;
    }

    /// <summary>
    /// Uploads workload data (CSV with a header row, or JSON Lines) from <paramref name="content"/>, reporting the bytes sent so
    /// far to <paramref name="progress"/>. <paramref name="strict"/> asks the server to refuse the whole file if any row is bad,
    /// <paramref name="replace"/> to replace the data stored before. A refused file (400, 413, 422) is a
    /// <see cref="WorkloadUploadResult.Refused"/> with the server's report; other errors throw <see cref="ApexApiException"/>.
    /// </summary>
    public async Task<WorkloadUploadResult> UploadWorkloadAsync(Stream content, string contentType, bool strict = false, bool replace = false,
        IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(content);
        var query = $"api/workloads?strict={(strict ? "true" : "false")}&replace={(replace ? "true" : "false")}";
        using var body = new ProgressContent(content, progress);
        body.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        using var response = await Http.SendAsync(Authorized(HttpMethod.Post, query, body), cancellationToken);
        if (response.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.RequestEntityTooLarge or HttpStatusCode.UnprocessableEntity
            && response.Content.Headers.ContentType?.MediaType == "application/problem+json")
            return new WorkloadUploadResult.Refused((await response.Content.ReadFromJsonAsync(ApexJsonContext.Default.WorkloadProblem, cancellationToken))!);
        await EnsureSuccessAsync(response, cancellationToken);
        return new WorkloadUploadResult.Imported((await response.Content.ReadFromJsonAsync(ApexJsonContext.Default.WorkloadReport, cancellationToken))!);
    }

    /// <summary>Replaces the user's workload data with a generated, realistic sample.</summary>
    public Task<WorkloadReport> GenerateSampleWorkloadAsync(SampleWorkloadRequest request, CancellationToken cancellationToken = default) =>
        PostAsync("api/workloads/sample", request, ApexJsonContext.Default.SampleWorkloadRequest, ApexJsonContext.Default.WorkloadReport, cancellationToken);

    /// <summary>The user's plan tier, model tokens and cost by day and model, and tool calls by day, over the last <paramref name="days"/> days.</summary>
    public Task<UsageDto> GetUsageAsync(int days = 30, CancellationToken cancellationToken = default) =>
        GetAsync($"api/usage?days={days}", ApexJsonContext.Default.UsageDto, cancellationToken);

    /// <summary>Uses tokens obtained elsewhere (another client, another node of the same cluster).</summary>
    public void SignIn(TokenResponse tokens)
    {
        Tokens = tokens;
        ApiKey = null;
    }

    /// <summary>Uses an API key (sent as the bearer wherever a token is accepted) instead of signed-in tokens.</summary>
    public void UseApiKey(string apiKey)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(apiKey);
        Tokens = null;
        ApiKey = apiKey;
    }

    /// <summary>
    /// Opens <c>/ws</c> with a fresh ticket and waits for <c>connection_established</c>. The socket goes to
    /// <paramref name="socketServer"/> when given (any node of the cluster), else to this client's server.
    /// </summary>
    public async Task<ApexSocket> ConnectAsync(CancellationToken cancellationToken = default, Uri? socketServer = null)
    {
        var ticket = await GetWsTicketAsync(cancellationToken);
        var socket = new ClientWebSocket();
        var server = socketServer ?? Http.BaseAddress!;
        var uri = new UriBuilder(new Uri(server, "ws")) { Scheme = server.Scheme == "https" ? "wss" : "ws", Query = "ticket=" + Uri.EscapeDataString(ticket) }.Uri;
        await socket.ConnectAsync(uri, cancellationToken);
        var apex = new ApexSocket(socket);
        var first = await apex.ReceiveAsync(cancellationToken);
        if (first is not ConnectionEstablished)
        {
            apex.Dispose();
            throw new InvalidOperationException($"Expected connection_established, got {first?.Type ?? "a closed socket"}.");
        }
        apex.Established = (ConnectionEstablished)first;
        return apex;
    }

    /// <summary>Reads a thread's events over SSE after <paramref name="afterSeq"/>, live until cancelled.</summary>
    public async IAsyncEnumerable<ApexEvent> StreamEventsAsync(string threadId, long? afterSeq = null, bool useLastEventIdHeader = true,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var path = $"api/threads/{Uri.EscapeDataString(threadId)}/events";
        if (afterSeq is { } after && !useLastEventIdHeader) path += $"?after={after}";
        using var request = Authorized(HttpMethod.Get, path);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        if (afterSeq is { } cursor && useLastEventIdHeader) request.Headers.Add("Last-Event-ID", cursor.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        await EnsureSuccessAsync(response, cancellationToken);
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        await foreach (var item in System.Net.ServerSentEvents.SseParser.Create(stream).EnumerateAsync(cancellationToken))
        {
            if (item.Data.Length == 0) continue;
            var evt = JsonSerializer.Deserialize(item.Data, ApexJsonContext.Default.ApexEvent);
            if (evt is not null) yield return evt;
        }
    }

    /// <summary>Adds the API key or the access token to a request.</summary>
    public HttpRequestMessage Authorized(HttpMethod method, string path, HttpContent? content = null)
    {
        var request = new HttpRequestMessage(method, path) { Content = content };
        if ((ApiKey ?? Tokens?.AccessToken) is { } bearer) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        return request;
    }

    /// <inheritdoc/>
    public void Dispose() => Http.Dispose();

    private TokenResponse SignedIn(TokenResponse tokens)
    {
        SignIn(tokens);
        return tokens;
    }

    private TokenResponse RequireTokens() => Tokens ?? throw new InvalidOperationException("Sign in first.");

    private static string CursorQuery(string? cursor) => cursor is null ? "" : "&cursor=" + Uri.EscapeDataString(cursor);

    private async Task<TResponse> GetAsync<TResponse>(string path, System.Text.Json.Serialization.Metadata.JsonTypeInfo<TResponse> type, CancellationToken cancellationToken)
    {
        using var response = await Http.SendAsync(Authorized(HttpMethod.Get, path), cancellationToken);
        await EnsureSuccessAsync(response, cancellationToken);
        return (await response.Content.ReadFromJsonAsync(type, cancellationToken))!;
    }

    private async Task<TResponse> PostAsync<TRequest, TResponse>(string path, TRequest body,
        System.Text.Json.Serialization.Metadata.JsonTypeInfo<TRequest> requestType,
        System.Text.Json.Serialization.Metadata.JsonTypeInfo<TResponse> responseType, CancellationToken cancellationToken)
    {
        using var response = await Http.SendAsync(Authorized(HttpMethod.Post, path, JsonContent.Create(body, requestType)), cancellationToken);
        await EnsureSuccessAsync(response, cancellationToken);
        return (await response.Content.ReadFromJsonAsync(responseType, cancellationToken))!;
    }

    private static async Task EnsureSuccessAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode) return;
        throw new ApexApiException(response.StatusCode, await response.Content.ReadAsStringAsync(cancellationToken));
    }
}

/// <summary>One open <c>/ws</c> connection: send frames, receive events.</summary>
public sealed class ApexSocket(WebSocket socket) : IDisposable
{
    private readonly SemaphoreSlim _sendLock = new(1, 1);

    /// <summary>The underlying socket.</summary>
    public WebSocket Socket { get; } = socket;

    /// <summary>The server's greeting.</summary>
    public ConnectionEstablished? Established { get; internal set; }

    /// <summary>Sends a typed frame.</summary>
    public Task SendAsync<TPayload>(string type, TPayload payload, System.Text.Json.Serialization.Metadata.JsonTypeInfo<TPayload> payloadType, CancellationToken cancellationToken = default) =>
        SendFrameAsync(new ClientFrame(type, JsonSerializer.SerializeToElement(payload, payloadType)), cancellationToken);

    /// <summary>Sends <c>user_message</c>.</summary>
    public Task SendMessageAsync(string content, string? threadId = null, string? strategy = null, CancellationToken cancellationToken = default) =>
        SendAsync("user_message", new UserMessagePayload(content, threadId, strategy), ApexJsonContext.Default.UserMessagePayload, cancellationToken);

    /// <summary>Sends <c>approve_tool</c> (with edited <paramref name="arguments"/>, when given); the server answers <c>approval_accepted</c>.</summary>
    public Task ApproveToolAsync(string runId, string callId, JsonElement? arguments = null, CancellationToken cancellationToken = default) =>
        SendAsync("approve_tool", new ApprovalPayload(runId, callId, arguments), ApexJsonContext.Default.ApprovalPayload, cancellationToken);

    /// <summary>Sends <c>reject_tool</c> (with the <paramref name="reason"/> the model is told, when given).</summary>
    public Task RejectToolAsync(string runId, string callId, string? reason = null, CancellationToken cancellationToken = default) =>
        SendAsync("reject_tool", new ApprovalPayload(runId, callId, null, reason), ApexJsonContext.Default.ApprovalPayload, cancellationToken);

    /// <summary>Sends a frame.</summary>
    public Task SendFrameAsync(ClientFrame frame, CancellationToken cancellationToken = default) =>
        SendRawAsync(JsonSerializer.SerializeToUtf8Bytes(frame, ApexJsonContext.Default.ClientFrame), cancellationToken);

    /// <summary>Sends raw text, as is (for protocol tests).</summary>
    public async Task SendRawAsync(ReadOnlyMemory<byte> utf8, CancellationToken cancellationToken = default)
    {
        await _sendLock.WaitAsync(cancellationToken);
        try { await Socket.SendAsync(utf8, WebSocketMessageType.Text, true, cancellationToken); }
        finally { _sendLock.Release(); }
    }

    /// <summary>Receives the next event, or null when the server closed the socket.</summary>
    public async Task<ApexEvent?> ReceiveAsync(CancellationToken cancellationToken = default)
    {
        var text = await ReceiveTextAsync(cancellationToken);
        return text is null ? null : JsonSerializer.Deserialize(text, ApexJsonContext.Default.ApexEvent);
    }

    /// <summary>Receives the next text frame, or null when the server closed the socket.</summary>
    public async Task<string?> ReceiveTextAsync(CancellationToken cancellationToken = default)
    {
        var buffer = new byte[16 * 1024];
        using var message = new MemoryStream();
        while (true)
        {
            var result = await Socket.ReceiveAsync(buffer, cancellationToken);
            if (result.MessageType == WebSocketMessageType.Close) return null;
            message.Write(buffer, 0, result.Count);
            if (result.EndOfMessage) return Encoding.UTF8.GetString(message.GetBuffer(), 0, (int)message.Length);
        }
    }

    /// <summary>Receives events until one matches, returning every event read on the way (the match last).</summary>
    public async Task<List<ApexEvent>> ReceiveUntilAsync(Func<ApexEvent, bool> stop, CancellationToken cancellationToken = default)
    {
        var events = new List<ApexEvent>();
        while (await ReceiveAsync(cancellationToken) is { } evt)
        {
            events.Add(evt);
            if (stop(evt)) return events;
        }
        throw new WebSocketException("The server closed the socket before the awaited event arrived.");
    }

    /// <summary>Closes the socket politely.</summary>
    public async Task CloseAsync(CancellationToken cancellationToken = default)
    {
        if (Socket.State == WebSocketState.Open)
            await Socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bye", cancellationToken);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Socket.Dispose();
        _sendLock.Dispose();
    }
}

/// <summary>A request body read from a stream in chunks, reporting the bytes handed to the connection so far.</summary>
internal sealed class ProgressContent(Stream source, IProgress<long>? progress) : HttpContent
{
    private const int ChunkBytes = 64 * 1024;

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        var buffer = new byte[ChunkBytes];
        long sent = 0;
        int read;
        while ((read = await source.ReadAsync(buffer, cancellationToken)) > 0)
        {
            await stream.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            sent += read;
            progress?.Report(sent);
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = source.CanSeek ? source.Length - source.Position : 0;
        return source.CanSeek;
    }
}
