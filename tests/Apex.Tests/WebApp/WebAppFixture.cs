using Apex.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Apex.Tests.WebApp;

/// <summary>
/// One browser (Debian's Chromium, driven by Playwright) and the servers the web tests share: the
/// scripted server (fast built-in model; <c>[slow]</c> makes triage call a 10 s tool) and one whose
/// built-in model streams slowly, for reloading in the middle of a run. Each test gets a fresh
/// browser context.
/// </summary>
public sealed class WebAppFixture : IAsyncLifetime
{
    public const string ChromiumPath = "/usr/bin/chromium";

    private IPlaywright? _playwright;

    public ApexTestServer Server { get; private set; } = null!;

    public ApexTestServer SlowServer { get; private set; } = null!;

    public IBrowser Browser { get; private set; } = null!;

    public static string ScreenshotDirectory { get; } = Path.Combine(BuildOutput.RepositoryRoot(), "artifacts", "screenshots");

    public async Task InitializeAsync()
    {
        Server = await ApexTestServer.StartAsync(services: ScriptedChatClient.Register);
        SlowServer = await ApexTestServer.StartAsync(new Dictionary<string, string?> { ["Apex:Llm:BuiltInDelay"] = "00:00:00.03" });
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            // This machine's network refuses Chromium's background connections; without these flags it waits on them.
            Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"],
        });
        Directory.CreateDirectory(ScreenshotDirectory);
        // Start the browser's renderer and network service once, so that no test measures the browser's own cold start.
        await using var warm = await NewSessionAsync();
        await warm.Page.GotoAsync("/healthz");
    }

    /// <summary>A fresh context (its own storage, so its own session) and a page on <paramref name="server"/>.</summary>
    public async Task<BrowserSession> NewSessionAsync(ApexTestServer? server = null, int width = 1280, int height = 860)
    {
        var target = server ?? Server;
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = target.BaseAddress.ToString(),
            ViewportSize = new ViewportSize { Width = width, Height = height },
        });
        context.SetDefaultTimeout(20_000);
        var page = await context.NewPageAsync();
        return new BrowserSession(target, context, page);
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null) await Browser.CloseAsync();
        _playwright?.Dispose();
        if (Server is not null) await Server.DisposeAsync();
        if (SlowServer is not null) await SlowServer.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class WebAppCollection : ICollectionFixture<WebAppFixture>
{
    public const string Name = "web app";
}

/// <summary>One person in one browser context.</summary>
public sealed class BrowserSession(ApexTestServer server, IBrowserContext context, IPage page) : IAsyncDisposable
{
    public const string Password = "correct horse battery";

    private readonly List<string> _pageErrors = [];
    private bool _listening;

    public ApexTestServer Server { get; } = server;

    public IBrowserContext Context { get; } = context;

    public IPage Page { get; } = page;

    public string Email { get; private set; } = "";

    /// <summary>Uncaught script errors on the page: a test fails on any.</summary>
    public IReadOnlyList<string> PageErrors => _pageErrors;

    public async Task SignUpAsync(string? email = null)
    {
        Listen();
        Email = email ?? $"web-{Guid.NewGuid():N}@example.com";
        await Page.GotoAsync("/");
        await Page.GetByLabel("Email").FillAsync(Email);
        await Page.GetByLabel("Password").FillAsync(Password);
        await Page.GetByRole(AriaRole.Button, new() { Name = "Create account" }).ClickAsync();
        await Page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).WaitForAsync();
        await Page.Locator(".connection[data-state=online]").WaitForAsync();
    }

    public void Listen()
    {
        if (_listening) return;
        _listening = true;
        Page.PageError += (_, error) => _pageErrors.Add(error);
    }

    /// <summary>An API client signed in as the same person, to compare the page with what the server stored.</summary>
    public async Task<Apex.Client.ApexClient> ApiClientAsync()
    {
        var client = Server.CreateClient();
        await client.LoginAsync(Email, Password);
        return client;
    }

    public async Task SendAsync(string message)
    {
        await Page.GetByLabel("Message", new() { Exact = true }).FillAsync(message);
        await Page.GetByRole(AriaRole.Button, new() { Name = "Send" }).ClickAsync();
        // Sent (the box is cleared) or refused (the server's words appear): say which.
        await Page.WaitForFunctionAsync("() => document.querySelector('#message').value === '' || document.querySelector('.composer .error').textContent !== ''");
        var error = await Page.Locator(".composer .error").TextContentAsync();
        Assert.True(string.IsNullOrEmpty(error), $"sending '{message}' failed: {error}");
    }

    /// <summary>The thread id in the address (<c>#/t/&lt;id&gt;</c>), once the page shows one.</summary>
    public async Task<string> ThreadIdAsync()
    {
        // Polls the address: a hash change is not a navigation to wait for.
        await Assertions.Expect(Page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("#/t/.+"));
        return Uri.UnescapeDataString(new Uri(Page.Url).Fragment["#/t/".Length..]);
    }

    public async Task ScreenshotAsync(string name) =>
        await Page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(WebAppFixture.ScreenshotDirectory, name + ".png"), FullPage = true });

    public async ValueTask DisposeAsync() => await Context.CloseAsync();
}
