--[[
livestyle hotkeys for OBS Studio (28+ with obs-websocket 5.1+ built in).

Adds hotkeys under Settings -> Hotkeys:
  "livestyle: preset 1" .. "livestyle: preset 9", "livestyle: next", "livestyle: previous",
  "livestyle: bypass", "livestyle: reset"
Each press broadcasts an obs-websocket CustomEvent {"livestyle": {"command": ...}} that the
livestyle OBS bridge turns into a command. The keys work while OBS has focus (and system-wide
where OBS's hotkeys are global), without a Stream Deck.

obs-websocket has no "hotkey pressed" event and the obslua bindings cannot call its C API, so this
script calls obs-websocket's proc handler ("call_request" -> BroadcastCustomEvent) through LuaJIT FFI.

Install: Tools -> Scripts -> "+" -> pick this file. Then bind keys in Settings -> Hotkeys.
--]]

local obs = obslua
local ffi = require("ffi")

ffi.cdef([[
typedef struct proc_handler proc_handler_t;
typedef struct calldata { uint8_t *stack; size_t size; size_t capacity; bool fixed; } calldata_t;
proc_handler_t *obs_get_proc_handler(void);
bool proc_handler_call(proc_handler_t *handler, const char *name, calldata_t *params);
void calldata_set_data(calldata_t *data, const char *name, const char *in, size_t new_size);
bool calldata_get_data(const calldata_t *data, const char *name, void *out, size_t size);
void bfree(void *ptr);
struct obs_websocket_request_response { unsigned int status_code; char *comment; char *response_data; };
]])

-- libobs symbols are global in the OBS process on Linux and macOS; Windows needs obs.dll by name.
local function load_libobs()
    local ok = pcall(function() return ffi.C.obs_get_proc_handler end)
    if ok then
        return ffi.C
    end
    return ffi.load("obs")
end

local libobs = load_libobs()
local websocket_ph = nil
local hotkey_ids = {}

local function calldata_release(cd)
    if cd.stack ~= nil and not cd.fixed then
        libobs.bfree(cd.stack)
    end
end

local function calldata_string(cd, name, value)
    libobs.calldata_set_data(cd, name, value, #value + 1)
end

local function calldata_pointer(cd, name)
    local out = ffi.new("void *[1]")
    if libobs.calldata_get_data(cd, name, out, ffi.sizeof("void *")) then
        return out[0]
    end
    return nil
end

-- obs-websocket's own proc handler ("obs_websocket_api_get_ph" on the global one), cached.
local function get_websocket_ph()
    if websocket_ph ~= nil then
        return websocket_ph
    end
    local cd = ffi.new("calldata_t")
    if libobs.proc_handler_call(libobs.obs_get_proc_handler(), "obs_websocket_api_get_ph", cd) then
        local ph = calldata_pointer(cd, "ph")
        if ph ~= nil then
            websocket_ph = ffi.cast("proc_handler_t *", ph)
        end
    end
    calldata_release(cd)
    return websocket_ph
end

-- Broadcast {"livestyle": <message_json>} to every websocket client as a CustomEvent.
local function broadcast(message_json)
    local ph = get_websocket_ph()
    if ph == nil then
        obs.script_log(obs.LOG_WARNING, "livestyle: obs-websocket is not available; enable it in Tools -> WebSocket Server Settings")
        return
    end
    local cd = ffi.new("calldata_t")
    calldata_string(cd, "request_type", "BroadcastCustomEvent")
    calldata_string(cd, "request_data", '{"eventData":{"livestyle":' .. message_json .. '}}')
    libobs.proc_handler_call(ph, "call_request", cd)
    local response = calldata_pointer(cd, "response")
    if response ~= nil then
        local r = ffi.cast("struct obs_websocket_request_response *", response)
        if r.status_code ~= 100 then
            local comment = r.comment ~= nil and ffi.string(r.comment) or ""
            obs.script_log(obs.LOG_WARNING, "livestyle: BroadcastCustomEvent failed (" .. tonumber(r.status_code) .. ") " .. comment)
        end
        if r.comment ~= nil then libobs.bfree(r.comment) end
        if r.response_data ~= nil then libobs.bfree(r.response_data) end
        libobs.bfree(r)
    end
    calldata_release(cd)
end

-- name (stable, saved with the hotkey bindings), label (shown in Settings -> Hotkeys), message.
local HOTKEYS = {}
for n = 1, 9 do
    HOTKEYS[#HOTKEYS + 1] = { "livestyle.preset." .. n, "livestyle: preset " .. n,
                              '{"command":"preset","number":' .. n .. '}' }
end
HOTKEYS[#HOTKEYS + 1] = { "livestyle.next", "livestyle: next", '{"command":"next"}' }
HOTKEYS[#HOTKEYS + 1] = { "livestyle.previous", "livestyle: previous", '{"command":"previous"}' }
HOTKEYS[#HOTKEYS + 1] = { "livestyle.bypass", "livestyle: bypass", '{"command":"bypass"}' }
HOTKEYS[#HOTKEYS + 1] = { "livestyle.reset", "livestyle: reset", '{"command":"reset"}' }

function script_description()
    return "<b>livestyle hotkeys</b><br>Bind <i>livestyle: preset 1..9, next, previous, bypass, reset</i> " ..
        "in Settings &rarr; Hotkeys. Each press is sent to livestyle through obs-websocket " ..
        "(enable it in Tools &rarr; WebSocket Server Settings)."
end

function script_load(settings)
    for _, hotkey in ipairs(HOTKEYS) do
        local name, label, message = hotkey[1], hotkey[2], hotkey[3]
        local id = obs.obs_hotkey_register_frontend(name, label, function(pressed)
            if pressed then
                broadcast(message)
            end
        end)
        hotkey_ids[name] = id
        local saved = obs.obs_data_get_array(settings, name)
        obs.obs_hotkey_load(id, saved)
        obs.obs_data_array_release(saved)
    end
end

function script_save(settings)
    for name, id in pairs(hotkey_ids) do
        local saved = obs.obs_hotkey_save(id)
        obs.obs_data_set_array(settings, name, saved)
        obs.obs_data_array_release(saved)
    end
end
